"""The index folder on disk: format checks, reading one saved version, the crash-safe save.

:class:`~rag.index.HybridIndex` decides what an index holds, and writes and parses its files (the
folder's layout is drawn in :mod:`rag.index`). This module is the machinery around those files,
which is about folders and processes rather than retrieval: the manifest's format checks, reads
checked against the manifest's checksums that return one saved version while another process
saves, the two-rename swap that survives a crash, the writer lock, and the files other code
keeps beside an index. It is its own module so that :mod:`rag.index` reads top to bottom as the
hybrid index, and so every rule that keeps an index folder safe sits in one place.

Saving writes the new folder at ``PATH.tmp``, then swaps it in with two renames
(``PATH`` -> ``PATH.old``, ``PATH.tmp`` -> ``PATH``), so a crash while writing keeps the old index
intact. If the second rename fails the first is undone; if the process dies between the two,
load reads ``PATH.old`` in place (readers never rename, so a reader cannot break a writer's
swap) and the next save renames it back. A symlinked ``PATH`` keeps its link: the folder it
points at is swapped. The swap replaces the whole folder, so
:meth:`~rag.index.HybridIndex.save` refuses a ``PATH`` that is neither empty nor an index
(:class:`~rag.errors.IndexOverwriteError`) instead of deleting what is in it, and a ``PATH`` whose
folder cannot be written (:class:`~rag.errors.IndexWriteError`) before it writes anything.

One writer at a time, enforced: every write to an index takes its writer lock (:func:`writer_lock`,
an ``flock`` on the empty file ``PATH.lock`` beside the folder), so two processes saving to the
same path run one after the other instead of deleting each other's ``PATH.tmp``. Readers take no
lock and may run beside the writer: load checks each file on the bytes it parses, and reads again
when the folder was swapped under it (:func:`read_one_version`), so it returns one version,
never a mix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from evals.files import exclusive_lock, writable_folder
from rag.dense import same_model
from rag.errors import (
    IndexCorruptError,
    IndexNotFoundError,
    IndexOverwriteError,
    IndexVersionError,
    IndexWriteError,
)

log = logging.getLogger(__name__)

FORMAT = "rag-index"
FORMAT_VERSION = 1
FILES = ("documents.jsonl", "chunks.jsonl", "vectors.npy")
MANIFEST_KEYS = ("model", "chunker", "config", "n_documents", "n_chunks", "dim", "files")


LOAD_ATTEMPTS = 3
"""How often :meth:`~rag.index.HybridIndex.load` reads an index that another process swapped
meanwhile."""


def read_one_version(path: str | Path) -> tuple[Path, dict, dict[str, bytes]]:
    """The folder, manifest and checked file contents of one saved version of the index.

    A save in another process swaps a new folder in while a reader goes through the files
    (module docstring), so the manifest of one version can meet the files of the next (a false
    "fails its checksum"), or a file can vanish with the folder it was in. So each file is read
    once and checked on the bytes that load then parses: what load returns is always one version.
    A read that fails while the folder changed under it (:func:`_version`) is tried again; one
    that fails on an unchanged folder is a damaged index, and its error says so.
    """
    for _ in range(LOAD_ATTEMPTS):
        folder = index_folder(path)
        before = _version(folder)
        try:
            manifest = read_manifest(folder)
            return folder, manifest, {name: _read_checked(folder, name, manifest) for name in FILES}
        except (IndexCorruptError, IndexNotFoundError) as exc:
            if _version(folder) == before:
                raise
            log.info("the index at %s changed while it was read (%s); reading it again", path, exc)
    raise IndexCorruptError(
        f"the index at {path} changed while it was read, {LOAD_ATTEMPTS} times in a row: "
        "another process keeps saving to it. Load it again once that save has finished.",
        path=Path(path),
    )


T = TypeVar("T")
CHUNK_KEYS = ("chunk_id", "doc_id", "start", "end", "index")


def chunk_row(row: dict) -> dict:
    """A row of ``chunks.jsonl``, checked to hold every key load reads."""
    missing = [key for key in CHUNK_KEYS if key not in row]
    if missing:
        raise KeyError(missing[0])
    return row


def read_jsonl(
    folder: Path, name: str, data: dict[str, bytes], parse: Callable[[dict], T]
) -> list[T]:
    """The rows of index file ``name`` (its checked bytes in ``data``), each through ``parse``.

    Lines are split on ``"\\n"`` alone, the only line end :meth:`~rag.index.HybridIndex.save`
    writes. ``str.splitlines`` also splits on U+2028, U+2029 and U+0085, which
    ``json.dumps(..., ensure_ascii=False)`` leaves raw inside a string: a document holding one
    (text copied from a web page or a PDF) was cut in two, and the index it was saved in never
    loaded again.
    A row that does not parse is an :class:`~rag.errors.IndexCorruptError` naming the file.
    """
    where = folder / name
    try:
        lines = data[name].decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise IndexCorruptError(f"{where} is not UTF-8 text: {exc}", path=folder) from exc
    rows = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(parse(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:  # not JSON, a bad Document, a missing key
            raise IndexCorruptError(
                f"{where}, line {line_no}, cannot be read ({type(exc).__name__}: {exc}); "
                "rebuild the index with `python -m rag index`.",
                path=folder,
            ) from exc
    return rows


def _version(folder: Path) -> tuple | None:
    """What tells one saved version of an index folder from the next, None if there is none.

    A save renames a new folder into place (a new inode and change time) with a new manifest.
    """
    try:
        stat = folder.stat()
        return stat.st_dev, stat.st_ino, stat.st_ctime_ns, (folder / "manifest.json").read_bytes()
    except OSError:
        return None


def _read_checked(folder: Path, name: str, manifest: dict) -> bytes:
    """The bytes of index file ``name``, checked against the manifest's sha256 for it."""
    try:
        data = (folder / name).read_bytes()
    except FileNotFoundError:
        raise IndexCorruptError(f"{folder / name} is missing", path=folder) from None
    expected, actual = manifest["files"].get(name), hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise IndexCorruptError(
            f"{folder / name} fails its checksum (expected {expected}, found {actual}); "
            "the file was modified or truncated. Rebuild with `python -m rag index`.",
            path=folder,
        )
    return data


def read_manifest(path: Path) -> dict:
    """Parse and check ``manifest.json`` (format name and version)."""
    mpath = path / "manifest.json"
    try:
        text = mpath.read_text()
    except (FileNotFoundError, NotADirectoryError):
        raise IndexNotFoundError(
            f"no index at {path} (missing manifest.json); build one with "
            "`python -m rag index PATH`",
            path=path,
        ) from None
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IndexCorruptError(f"{mpath} is not valid JSON: {exc}", path=path) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexCorruptError(f"{mpath} is not a {FORMAT} manifest", path=path)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexVersionError(
            f"index at {path} has format version {manifest.get('format_version')}, this code "
            f"reads version {FORMAT_VERSION}; rebuild it with `python -m rag index`.",
            path=path,
            found=manifest.get("format_version"),
            expected=FORMAT_VERSION,
        )
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    if missing:
        raise IndexCorruptError(
            f"{mpath} lacks {', '.join(map(repr, missing))} (a {FORMAT} manifest has "
            f"{', '.join(MANIFEST_KEYS)}); rebuild the index with `python -m rag index`.",
            path=path,
        )
    return manifest


def _sibling(path: Path, suffix: str) -> Path:
    """``path.tmp``, ``path.old`` or ``path.lock``: the names
    :meth:`~rag.index.HybridIndex.save` uses."""
    return path.with_name(f"{path.name}.{suffix}")


def save_folder(path: str | Path) -> Path:
    """The folder a save to ``path`` swaps, as an absolute path: the target of a symlinked
    ``path``, else ``path``.

    The link's target, not the link: renaming the link itself would turn it into a plain folder
    and strand the target. Absolute, with ``.`` and ``..`` resolved, because the names beside
    it (``PATH.tmp``, ``PATH.old``, ``PATH.lock``) are made from its last part: ``Path(".")``
    has none (``--index .`` embedded or trained for minutes, then crashed with a ValueError)
    and ``idx/..`` would name ``idx/...tmp``.
    """
    return Path(path).resolve()


@contextmanager
def writer_lock(path: str | Path) -> Iterator[None]:
    """Hold the writer lock of the index at ``path``, waiting while another writer holds it.

    Every write to an index takes it: :meth:`~rag.index.HybridIndex.save` for its whole swap,
    and the CLI's ``train-reranker`` from its check that the index is still the version it
    trained on until its ``reranker.json`` is written. Without it two saves to one path delete
    each other's ``PATH.tmp`` midway, and a save could swap a new version in between that check
    and that write. The lock is :func:`evals.files.exclusive_lock` on ``PATH.lock``, an empty
    file left beside the folder: re-entrant within a thread and one lock however the path is
    spelt, so a read-modify-write can hold it from load to save::

        with writer_lock(path):
            index = HybridIndex.load(path, embedder)
            index.upsert(new_documents)
            index.save(path)

    ``flock`` on POSIX; on Windows, the ``filelock`` package's lock (see ``exclusive_lock``).

    It guards the folder, not an index in memory: threads sharing one ``HybridIndex`` are kept
    apart by that index's own ``lock`` (:mod:`rag.rwlock`), which ``upsert`` and ``delete`` take
    themselves. Take this lock first and that one inside it, as ``save`` does: a thread holding
    ``index.lock.read()`` while it waits here can deadlock with one that holds this lock and
    upserts into the same index.
    """
    folder = save_folder(path)
    with exclusive_lock(_sibling(folder, "lock"), f"another process writing the index at {folder}"):
        yield


def _is_index(path: Path) -> bool:
    """Does ``path`` hold a manifest this package wrote (any format version)?"""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def check_save_target(path: str | Path) -> None:
    """Raise :class:`~rag.errors.IndexOverwriteError` unless saving to ``path`` is safe, and
    :class:`~rag.errors.IndexWriteError` unless it is possible.

    Safe: nothing is there, an empty folder, or an index this package wrote. Anything else
    (a file, a folder of notes) would be deleted by the save, which replaces the whole folder.
    Possible: the folder that holds ``path``, where the save writes ``PATH.tmp``, ``PATH.old``
    and ``PATH.lock``, can be created (it is, as the save would) and written, proven with a probe
    file: permission bits answer wrongly for root and on read-only mounts. Cheap, so the CLI calls
    it before minutes of embedding, which a save that fails afterwards would throw away.
    """
    path = Path(path)
    parent = save_folder(path).parent
    try:
        writable_folder(parent)
    except OSError as exc:
        is_file = isinstance(exc, (FileExistsError, NotADirectoryError))
        raise IndexWriteError(
            f"cannot save the index to {path}: its folder {parent} cannot be "
            f"{'created (a part of that path is a file)' if is_file else 'written'}: "
            f"{exc.strerror or exc}; pass a path in a folder that can be written",
            path=path,
        ) from exc
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise IndexOverwriteError(
            f"cannot save the index to {path}: it is a file, and saving would replace it; "
            "pass a folder that does not exist yet, an empty one, or an existing index",
            path=path,
        )
    if _is_index(path):
        return
    entries = sorted(p.name for p in path.iterdir())
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise IndexOverwriteError(
            f"cannot save the index to {path}: the folder is not empty ({shown}) and holds no "
            f"index (no {FORMAT} manifest.json); saving replaces the whole folder and would "
            "delete those files. Pass a folder that does not exist yet, an empty one, or an "
            "existing index.",
            path=path,
        )


def _interrupted(path: Path) -> bool:
    """Did a save to ``path`` die between its two renames?

    Such a save leaves no folder at ``path``, the previous index at ``path.old`` and a complete
    new one at ``path.tmp``. A ``path.old`` alone is not one: a finished save whose clean-up of
    ``path.old`` stopped part way, followed by the user deleting ``path``, leaves just that.
    """
    return (
        not path.exists()
        and not path.is_symlink()
        and _is_index(_sibling(path, "old"))
        and _is_index(_sibling(path, "tmp"))
    )


def index_folder(path: str | Path) -> Path:
    """The folder to read the index at ``path`` from, without changing anything on disk.

    That is ``path`` (or the folder a symlink there points at), except while a save is
    interrupted (see :func:`recover_interrupted_save`): then it is ``path.old``, the previous
    index, read in place. Readers never rename: one running between a writer's two renames
    would make the writer's second rename fail. The next
    :meth:`~rag.index.HybridIndex.save` tidies up.
    """
    folder = save_folder(path)  # absolute: `.` and `..` have no name to put `.old` after
    if _interrupted(folder):
        log.warning(
            "an earlier save to %s was interrupted; reading the previous index at %s "
            "(the next save puts it back in place)",
            folder,
            _sibling(folder, "old"),
        )
        return _sibling(folder, "old")
    return folder


def recover_interrupted_save(path: str | Path) -> bool:
    """Undo a save that died between its two renames; returns whether there was one to undo.

    The previous index, at ``path.old``, is the one a failed save promises to keep, so it is
    renamed back (the next save cleans ``path.tmp`` up). Only
    :meth:`~rag.index.HybridIndex.save` calls this: readers use :func:`index_folder`, which
    reads ``path.old`` in place.
    """
    path = save_folder(path)
    old = _sibling(path, "old")
    if not _interrupted(path):
        return False
    try:
        old.rename(path)
    except OSError as exc:
        log.warning("found an interrupted save at %s but cannot rename %s back: %s", path, old, exc)
        return False
    log.warning("an earlier save to %s was interrupted; restored the previous index", path)
    return True


def swap_in(folder: Path, write: Callable[[Path], None], manifest: dict) -> None:
    """The body of :meth:`~rag.index.HybridIndex.save`, run under the writer lock.

    ``write(tmp)`` writes the index files into the new folder; ``manifest`` is the new index's
    (:meth:`~rag.index.HybridIndex.manifest`), which decides the files carried over.
    """
    recover_interrupted_save(folder)
    check_save_target(folder)
    tmp, old = _sibling(folder, "tmp"), _sibling(folder, "old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        _carry_over(folder, tmp, manifest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed save leaves nothing behind
        raise
    try:
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)  # a cut-short clean-up left it
            folder.rename(old)
        tmp.rename(folder)
    except BaseException:
        if old.exists() and not folder.exists():
            old.rename(folder)  # put the previous index back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if old.exists():
        log.warning(
            "saved the index to %s but could not delete the previous one at %s; "
            "delete that folder by hand",
            folder,
            old,
        )


MODEL_BOUND_FILES = ("reranker.json",)
"""Files kept beside an index that hold scores of its embedding model over its chunks."""


def _carry_over(old: Path, new: Path, manifest: dict) -> list[str]:
    """Copy the files of index folder ``old`` that an index does not write into ``new``.

    These are files other code keeps beside the index, such as the CLI's ``reranker.json``.
    The reranker is kept on purpose: its features are relative to each query's candidates and
    name no document, and its abstention threshold is a dense-cosine level, so it stays valid
    when documents are added, replaced or deleted (retrain after the corpus changes a lot).
    Dropping it would silently switch the CLI back to unreranked search with no abstention.
    It is not kept when the new index (``manifest``) uses another embedding model or chunker:
    then those cosines are another model's, and the threshold would abstain at random.
    """
    if not _is_index(old):
        return []
    previous = json.loads((old / "manifest.json").read_text())
    same = (
        same_model(str(previous.get("model")), manifest["model"])
        and previous.get("chunker") == manifest["chunker"]
    )
    kept = []
    for item in sorted(old.iterdir()):
        if item.name in (*FILES, "manifest.json"):
            continue
        if item.name in MODEL_BOUND_FILES and not same:
            log.warning(
                "not keeping %s from the previous index at %s: it was trained for model %r "
                "with chunker %r, and the new index uses %r with %r; retrain it",
                item.name,
                old,
                previous.get("model"),
                previous.get("chunker"),
                manifest["model"],
                manifest["chunker"],
            )
            continue
        if item.is_dir():
            shutil.copytree(item, new / item.name, symlinks=True)
        else:
            shutil.copy2(item, new / item.name, follow_symlinks=False)
        kept.append(item.name)
    if kept:
        log.info("kept %s from the previous index at %s", ", ".join(kept), old)
    return kept


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
