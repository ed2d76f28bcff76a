"""Where the benchmark datasets come from, how they are found, and how they are checked.

Every number this project publishes is computed on one of four public datasets. This module is the
single place that knows their files, their sha256 checksums and row counts (copied from each
dataset's provenance record), and their canonical download address. Every loader in
:mod:`evals.datasets`:

1. **resolves** a folder holding the files. An explicit ``data_dir`` argument (the
   benchmarks' ``--data-dir``) is the only place looked in: a folder the user named that does
   not hold the dataset is an error, never a silent fallback to other data. Without one it
   tries, in order, the ``AIS_DATA_DIR`` environment variable, the user cache
   (``$XDG_CACHE_HOME/ai-interview-systems``, by default ``~/.cache/ai-interview-systems``),
   and finally a download from the canonical source;
2. **verifies** every file's sha256 (and, after parsing, its row count) so that a truncated or
   edited file raises :class:`DatasetIntegrityError` instead of silently producing wrong figures;
3. **parses** it into plain typed structures: BEIR-shaped dicts for retrieval, DataFrames for
   tables.

Downloads are written to a temporary folder beside the cache entry, verified there, and only then
renamed into place (an atomic ``os.replace``), so an interrupted download never becomes a cache
entry.
Set ``AIS_NO_DOWNLOAD=1`` to forbid network access entirely.

A folder counts as holding a dataset if it is ``<dir>/<name>/`` (the layout of ``--data-dir``) or if
``<dir>`` itself holds the files. Loaders return fresh objects on every call; callers may do what
they like with them, and nothing here ever mutates them after returning.

The loaders that parse the files live in :mod:`evals.datasets`; this module only finds and checks.

>>> folder = resolve("scifact")  # doctest: +SKIP
>>> sorted(p.name for p in folder.iterdir())  # doctest: +SKIP
['corpus.jsonl.gz', 'qrels', 'queries.jsonl']
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evals.errors import (
    DatasetIntegrityError,
    DatasetNotFoundError,
    UnknownDatasetError,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "FileSpec",
    "cache_root",
    "check_rows",
    "dataset_summary",
    "find_file",
    "resolve",
    "sha256_file",
]


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset. ``alternatives`` lists other names the same content may have.

    SciFact's corpus, for example, is ``corpus.jsonl`` in the BEIR zip and ``corpus.jsonl.gz`` in
    the shared data folder; each name has its own checksum.
    """

    name: str
    sha256: str
    rows: int | None = None  # data rows after parsing (header excluded); None: not checked
    alternatives: tuple[tuple[str, str], ...] = ()  # (name, sha256) pairs


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    files: tuple[FileSpec, ...]
    url: str  # canonical public source: a zip archive or a single file
    archive_prefix: str = ""  # folder inside the zip that holds the files ("" = zip root)
    license: str = ""
    citation: str = ""


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="scifact",
            description="BEIR SciFact: 5,183 abstracts, 1,109 claims (300 test / 809 train)",
            files=(
                FileSpec(
                    "corpus.jsonl",
                    "dec31c8182f3d744c7d2c09423756fd1d17cbef75808db13ba01cc0aab4d1ac6",
                    rows=5183,
                    alternatives=(
                        (
                            "corpus.jsonl.gz",
                            "7062adb7fd2931f40c846cf0215f4b8ba877bac94dc3d334bb9c4d714fb6fc33",
                        ),
                    ),
                ),
                FileSpec(
                    "queries.jsonl",
                    "8ff84a7c903f722981cd8d595c022660140c51867b27608a6d4910db86080313",
                    rows=1109,
                ),
                FileSpec(
                    "qrels/test.tsv",
                    "0864bb985e0ca2367ba217977e72004d549054b2b06666ed9d4825ac7c21284c",
                    rows=339,
                ),
                FileSpec(
                    "qrels/train.tsv",
                    "a53f2114831916c096b6c37d9e54da68cef4efdcdbd5ed46533601af972acf1d",
                    rows=919,
                ),
            ),
            url="https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/scifact.zip",
            archive_prefix="scifact/",
            license="claims/qrels CC BY 4.0; abstracts ODC-By 1.0",
            citation="Wadden et al., EMNLP 2020; Thakur et al., BEIR, NeurIPS 2021",
        ),
        DatasetSpec(
            name="movielens-100k",
            description="MovieLens 100K: 100,000 ratings by 943 users on 1,682 movies",
            files=(
                FileSpec(
                    "u.data",
                    "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
                    rows=100_000,
                ),
                FileSpec(
                    "u.item",
                    "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
                    rows=1682,
                ),
                FileSpec(
                    "u.user",
                    "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
                    rows=943,
                ),
                FileSpec(
                    "u.genre", "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb"
                ),
            ),
            url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
            archive_prefix="ml-100k/",
            license="GroupLens research use only; no redistribution (download it yourself)",
            citation="Harper & Konstan, ACM TiiS 5(4), 2015",
        ),
        DatasetSpec(
            name="bike-sharing",
            description="UCI Bike Sharing hourly demand, Washington D.C., 2011-2012",
            files=(
                FileSpec(
                    "hour.csv",
                    "e03de4ee4ef4dc376ac6e04bf829673c6269e8eba5c60fa121640fa2f829504f",
                    rows=17_379,
                ),
            ),
            url="https://archive.ics.uci.edu/static/public/275/bike+sharing+dataset.zip",
            license="CC BY 4.0 (UCI); cite Fanaee-T & Gama 2013",
            citation="Fanaee-T & Gama, Progress in Artificial Intelligence, 2013",
        ),
        DatasetSpec(
            name="davidson-hate-offensive",
            description="Davidson et al. 2017: 24,783 tweets labelled hate / offensive / neither",
            files=(
                FileSpec(
                    "labeled_data.csv",
                    "fcb8bc7c68120ae4af04a5b9acd58585513ede11e1548ebf36a5c2040b6f6281",
                    rows=24_783,
                ),
            ),
            url=(
                "https://raw.githubusercontent.com/t-davidson/"
                "hate-speech-and-offensive-language/master/data/labeled_data.csv"
            ),
            license="MIT (authors' repository); tweet text is Twitter/X content",
            citation="Davidson et al., ICWSM 2017",
        ),
    )
}


def _spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownDatasetError(name, list(DATASETS)) from None


# --------------------------------------------------------------------------------------------
# Resolution and verification
# --------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """The user cache: ``$XDG_CACHE_HOME/ai-interview-systems`` (default ``~/.cache/...``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ai-interview-systems"


# Hashing 10 MB takes ~20 ms; remember what was verified (by path, size and mtime) so a benchmark
# that loads a dataset many times pays it once per process.
_verified: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _verified[key] = digest.hexdigest()
    return _verified[key]


def find_file(folder: Path, spec: FileSpec) -> tuple[Path, str] | None:
    """The first present name of ``spec`` in ``folder`` and the checksum it must have."""
    for name, sha in ((spec.name, spec.sha256), *spec.alternatives):
        if (folder / name).is_file():
            return folder / name, sha
    return None


def _holds(folder: Path, spec: DatasetSpec) -> bool:
    return all(find_file(folder, f) is not None for f in spec.files)


def _verify(folder: Path, spec: DatasetSpec) -> None:
    for file_spec in spec.files:
        found = find_file(folder, file_spec)
        assert found is not None  # _holds() was checked first
        path, expected = found
        actual = sha256_file(path)
        if actual != expected:
            raise DatasetIntegrityError(spec.name, path, f"sha256 is {actual}, expected {expected}")


def _candidates(name: str, data_dir: str | Path | None) -> list[Path]:
    """Where to look: only ``data_dir`` when the caller names one, else the env var and cache."""
    if data_dir is not None:
        base = Path(data_dir).expanduser()
        return [base / name, base]
    places: list[Path] = []
    if env := os.environ.get("AIS_DATA_DIR"):
        base = Path(env).expanduser()
        places += [base / name, base]
    places.append(cache_root() / name)
    return places


def resolve(
    name: str,
    data_dir: str | Path | None = None,
    *,
    download: bool | None = None,
    fetch: Callable[[str], bytes] | None = None,
) -> Path:
    """Return a verified folder holding dataset ``name``, downloading it if needed and allowed.

    ``download=None`` means "allowed unless ``AIS_NO_DOWNLOAD`` is set". ``fetch(url) -> bytes`` is
    the network seam (default: ``urllib``); tests pass a loopback server's URL instead of mocking.
    """
    spec = _spec(name)
    looked_in = _candidates(name, data_dir)
    for folder in looked_in:
        if folder.is_dir() and _holds(folder, spec):
            _verify(folder, spec)
            logger.debug("dataset %s found in %s", name, folder)
            return folder

    if download is None:
        download = not os.environ.get("AIS_NO_DOWNLOAD")
    how_to_fix = (
        f"download {spec.url} yourself and unpack it so that <DIR>/{name}/ holds "
        f"{', '.join(f.name for f in spec.files)}; then pass --data-dir DIR "
        "(or set AIS_DATA_DIR=DIR)."
    )
    if data_dir is not None:  # a folder the caller named is not second-guessed
        raise DatasetNotFoundError(
            name, looked_in, "not attempted: the folder passed as data_dir is used as given",
            f"check that path, or leave it out to use AIS_DATA_DIR, the cache or a download; "
            f"{how_to_fix}",
        )  # fmt: skip
    if not download:
        raise DatasetNotFoundError(name, looked_in, "disabled (AIS_NO_DOWNLOAD is set)", how_to_fix)
    try:
        return _download(spec, cache_root() / name, fetch or _urllib_fetch)
    # URLError is an OSError; a body cut short raises http.client.IncompleteRead instead.
    except (OSError, http.client.HTTPException, zipfile.BadZipFile) as exc:
        raise DatasetNotFoundError(
            name, looked_in, f"failed from {spec.url}: {exc}", how_to_fix
        ) from exc


def _urllib_fetch(url: str) -> bytes:
    logger.info("downloading %s", url)
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def _download(spec: DatasetSpec, target: Path, fetch: Callable[[str], bytes]) -> Path:
    """Fetch, unpack and verify into a temp folder, then atomically rename it to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = fetch(spec.url)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{spec.name}-") as tmp:
        staging = Path(tmp) / "data"
        staging.mkdir()
        if spec.url.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                members = set(archive.namelist())
                for file_spec in spec.files:
                    member = spec.archive_prefix + file_spec.name
                    if member not in members:
                        raise DatasetIntegrityError(
                            spec.name, Path(spec.url), f"archive has no member {member!r}"
                        )
                    out = staging / file_spec.name
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(archive.read(member))
        else:
            (staging / spec.files[0].name).write_bytes(payload)
        _verify(staging, spec)  # raises before anything reaches the cache
        if target.exists():  # a stale or corrupt entry: replace it whole
            shutil.rmtree(target)
        os.replace(staging, target)
    logger.info("dataset %s downloaded and verified into %s", spec.name, target)
    return target


def check_rows(name: str, path: Path, actual: int, expected: int | None) -> None:
    if expected is not None and actual != expected:
        raise DatasetIntegrityError(name, path, f"{actual} rows, expected {expected}")


def dataset_summary(name: str, data_dir: str | Path | None = None) -> dict:
    """Provenance for a benchmark record: name, source, and every file's checksum and rows."""
    spec = _spec(name)
    folder = resolve(name, data_dir)
    files = {}
    for file_spec in spec.files:
        path, _ = find_file(folder, file_spec)  # type: ignore[misc]
        files[path.relative_to(folder).as_posix()] = {
            "sha256": sha256_file(path),
            "rows": file_spec.rows,
        }
    return {"name": name, "source": spec.url, "license": spec.license, "files": files}
