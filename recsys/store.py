"""A saved model: the folder ``TwoStageRecommender.save`` writes and ``load`` reads.

A model folder holds ``model.pkl`` (the pickled recommender), ``manifest.json`` (the format
version, the config and a few counts, for people and for a version check before unpickling) and
``model.lock`` (empty: :func:`model_lock`'s lock file). This module is the folder's whole
contract, apart from the recommender because none of it is the algorithm:

* :func:`save_model` writes both files atomically, under the lock; :func:`make_model_folder`
  creates the folder (``python -m recsys train`` calls it before fitting);
* :func:`load_model` checks the manifest's ``FORMAT_VERSION``, then unpickles with a
  restricted unpickler that resolves only :data:`SAFE_GLOBALS` (``evals/pickles.py``);
* :func:`saved_films` reads the films a saved model holds from ``add_items``, so that a
  retrain keeps them (``films.py``).

``TwoStageRecommender.save`` and ``.load`` are the public way in; they call this module.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from evals.errors import RefusedPickleError
from evals.files import exclusive_lock, writable_folder, written_atomically
from evals.pickles import restricted_load
from recsys.errors import ModelFileError, UnsafeModelError
from recsys.films import NO_FILMS, FilmRows

if TYPE_CHECKING:
    from recsys.recommender import TwoStageRecommender

logger = logging.getLogger(__name__)

# Bumped when a saved model's object layout changes, so an old file is refused with a clear
# error instead of failing mid-call. 2: the ranker holds a list of bagged LightGBM models.
# 3: the sources' classes moved from sources.py into neighbours/autoencoders/factors.py.
# 4: the model holds its new items and their content scorer (new_item_slots).
# 5: items added after training (add_items), and the content scorer's catalogue statistics.
# 6: added films keep their rows as given (genres, date) and a retrain keeps them (kept_).
# (Still 6 after FilmRows and AddedItems moved into films.py: SAFE_GLOBALS keeps their old
# names, so the files of format 6 saved before the move load unchanged.)
FORMAT_VERSION = 6


# Everything a saved recommender is made of (recorded from models with every source, both
# protocols, graded labels and the blend features). ``load_model`` resolves only these
# names (evals/pickles.py), so model.pkl cannot call ``os.system`` or any other function.
# numpy 1 pickles say ``numpy.core``, numpy 2 ``numpy._core``; faiss names the build it loaded
# (plain, AVX2 or AVX-512).
SAFE_GLOBALS = frozenset(
    {
        ("recsys.recommender", "TwoStageRecommender"),
        ("recsys.films", "AddedItems"),
        ("recsys.films", "FilmRows"),
        # the same two classes as named by models saved before films.py was split out of
        # recommender.py: recommender.py imports them, so these names resolve to them still
        ("recsys.recommender", "AddedItems"),
        ("recsys.recommender", "FilmRows"),
        ("recsys.config", "RecsysConfig"),
        ("recsys.catalog", "Catalog"),
        ("recsys.cold_start", "SegmentPopularity"),
        ("recsys.cold_start", "ContentScorer"),
        ("recsys.features", "FeatureBuilder"),
        ("recsys.features", "_Timeline"),
        ("recsys.ranker", "LambdaRanker"),
        ("recsys.sources", "Popularity"),
        ("recsys.neighbours", "ItemKNN"),
        ("recsys.neighbours", "UserKNN"),
        ("recsys.neighbours", "RP3beta"),
        ("recsys.autoencoders", "EASE"),
        ("recsys.autoencoders", "DLAE"),
        ("recsys.autoencoders", "EDLAE"),
        ("recsys.autoencoders", "MultVAE"),
        ("recsys.factors", "ALS"),
        ("recsys.factors", "BPR"),
        ("recsys.factors", "EmbeddingNeighbours"),
        ("lightgbm.basic", "Booster"),
        ("lightgbm.sklearn", "LGBMRanker"),
        ("scipy.sparse._csr", "csr_matrix"),
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        *((f"numpy.{core}.multiarray", "_reconstruct") for core in ("core", "_core")),
        *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
        *((f"faiss.{build}", "IndexFlatIP")
          for build in ("swigfaiss", "swigfaiss_avx2", "swigfaiss_avx512")),
    }
)  # fmt: skip


def save_model(model: TwoStageRecommender, path: str | Path) -> Path:
    """Write ``model.pkl`` and a human-readable ``manifest.json`` into directory ``path``."""
    folder = make_model_folder(path)
    with model_lock(folder):
        _write(model, folder)
    return folder


def _write(model: TwoStageRecommender, folder: Path) -> None:
    """The body of :func:`save_model`, under the model's lock."""
    manifest = {
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "n_users": model.catalog.n_users,
        "n_items": model.catalog.n_items,
        "n_added_items": len(model.added_),
        "n_kept_items": len(model.kept_),
        "n_interactions": int(model.interactions_.nnz),
        "feature_importances": model.ranker_.importances(),
    }
    # each file is written under a temporary name and renamed into place, so a failed write
    # (a full disk) leaves the previous model whole rather than a truncated one
    try:
        with written_atomically(folder / "model.pkl") as tmp, tmp.open("wb") as fh:
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
        with written_atomically(folder / "manifest.json") as tmp:
            tmp.write_text(json.dumps(manifest, indent=2))
    except OSError as exc:  # a full disk, a read-only folder
        raise ModelFileError(f"cannot write the model into {folder}: {exc}") from exc


def load_model(path: str | Path, cls: type[TwoStageRecommender]) -> TwoStageRecommender:
    """Load a model written by :func:`save_model`: an instance of ``cls``, else an error.

    ``model.pkl`` is read by an unpickler that resolves only :data:`SAFE_GLOBALS`: a file
    naming anything else (``os.system``, ``builtins.eval``), or setting attributes on an allowed
    class itself, is refused with :class:`~recsys.errors.UnsafeModelError` before that name is
    looked up or that attribute set.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ModelFileError(
            f"{folder} is a file; pass the folder `python -m recsys train` saved into"
        )
    # The manifest's version is checked before unpickling: an older layout may name
    # classes this code no longer has, which would fail as a confusing unpickling error.
    manifest = _read_model_file(folder, "manifest.json", json.loads)
    found = manifest.get("format_version") if isinstance(manifest, dict) else None
    if found != FORMAT_VERSION:
        raise ModelFileError(
            f"{folder} holds format {found!r}; this code reads format {FORMAT_VERSION}. "
            "Retrain with `python -m recsys train`."
        )
    model = _read_model_file(folder, "model.pkl", _unpickle)
    if not isinstance(model, cls):
        raise ModelFileError(
            f"{folder}/model.pkl holds a {type(model).__name__}, not a recommender. "
            "Retrain with `python -m recsys train`."
        )
    return model


@contextmanager
def model_lock(path: str | Path) -> Iterator[None]:
    """Hold the lock of the model saved in folder ``path`` (``model.lock`` in it).

    :meth:`TwoStageRecommender.save` takes it, and a read-modify-write holds it from load to
    save (``python -m recsys add-items``), so two of them never interleave: the second loads
    what the first saved, and no added film is lost. It is :func:`evals.files.exclusive_lock`
    (re-entrant within a thread; ``flock`` on POSIX, ``filelock`` on Windows). A folder that
    does not exist has nothing to lock: ``save`` creates it first, and ``load`` says it holds no
    model.
    """
    folder = Path(path)
    if not folder.is_dir():
        yield
        return
    with exclusive_lock(folder / "model.lock", f"another process writing the model in {folder}"):
        yield


def make_model_folder(path: str | Path) -> Path:
    """Create the folder ``save`` writes into (and its parents); ``ModelFileError`` if it can't.

    ``python -m recsys train`` calls it before fitting, so a bad ``--model-dir`` fails in a
    moment rather than after minutes of training.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ModelFileError(f"{folder} is a file; a model is saved into a folder")
    try:  # created, and a probe file written: os.access says yes to root on read-only mounts
        writable_folder(folder)
    except OSError as exc:  # a file on the path, a read-only or virtual file system
        raise ModelFileError(
            f"cannot create or write in the model folder {folder} ({exc.strerror or exc}); "
            "choose a folder you can write to"
        ) from exc
    return folder


def saved_films(path: str | Path) -> FilmRows:
    """The films a saved model holds from ``add_items`` (``films_added``), for a retrain to keep.

    No model in folder ``path``: none. The films are read from ``model.pkl`` itself, never
    counted from the manifest: the two files are written one after the other, so a failed second
    write (a full disk) can leave a manifest that lags the model ``recommend`` serves. A model
    that cannot be read gives none only if its manifest is readable and says it holds no added
    films; otherwise (some films, in a format that kept no genres or dates to carry them, or a
    model that cannot be read, or a manifest that cannot say) it is a ``ModelFileError``, so
    that a retrain never drops them unsaid.
    """
    folder = Path(path)
    if not any((folder / name).exists() for name in ("model.pkl", "manifest.json")):
        return NO_FILMS
    from recsys.recommender import TwoStageRecommender  # here, as recommender.py imports store

    try:
        return TwoStageRecommender.load(folder).films_added()
    except (ModelFileError, UnsafeModelError) as exc:
        unreadable = exc
    try:  # the model cannot be read: does it hold films? Only its manifest can say.
        manifest = json.loads((folder / "manifest.json").read_bytes())
        n_films = int(manifest.get("n_added_items", 0)) + int(manifest.get("n_kept_items", 0))
        found = manifest.get("format_version")
    except Exception:  # missing, unreadable, not JSON, not a dict: many exception types
        n_films, found = None, None
    if n_films == 0:
        logger.warning(
            "the model in %s is unreadable (%s): it held no added films", folder, unreadable
        )
        return NO_FILMS
    move = f"move {folder} aside (or pass another --model-dir) to train without them"
    if n_films is not None and found != FORMAT_VERSION:
        raise ModelFileError(
            f"the model in {folder} holds {n_films} films added with add-items, in format "
            f"{found!r}, which kept no genres or dates to carry them into a retrain; {move}, "
            "then add them again with add-items"
        )
    held = "an unknown number of" if n_films is None else str(n_films)
    raise ModelFileError(
        f"the model in {folder} may hold {held} films added with add-items, but cannot be read "
        f"to keep them ({unreadable}); {move}"
    ) from unreadable


def _unpickle(data: bytes) -> object:
    try:
        return restricted_load(io.BytesIO(data), SAFE_GLOBALS)
    except RefusedPickleError as exc:
        raise UnsafeModelError(
            f"model.pkl {exc.problem}; it was not loaded (loading could have run code, changed "
            "every recommender in this process or crashed it). Retrain with `python -m recsys "
            "train`, or load only folders it wrote",
            name=exc.name,
        ) from None


def _read_model_file(folder: Path, name: str, parse):
    """``parse(bytes)`` of one file of a saved model; any failure is a ``ModelFileError``."""
    try:
        return parse((folder / name).read_bytes())
    except FileNotFoundError as exc:
        raise ModelFileError(f"no saved model in {folder}: {exc.filename} is missing") from exc
    except UnsafeModelError as exc:
        raise UnsafeModelError(f"{folder}: {exc}", name=exc.name) from None
    except Exception as exc:  # unreadable, not JSON, not a pickle: many exception types
        raise ModelFileError(
            f"saved model in {folder} is corrupt ({type(exc).__name__}: {exc}); "
            "retrain with `python -m recsys train`"
        ) from exc
