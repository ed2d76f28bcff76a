"""The benchmark datasets, parsed: BEIR retrieval sets, MovieLens 100K, Bike Sharing, Davidson.

Each loader asks :func:`evals.sources.resolve` for a verified folder (explicit ``data_dir``, then
``AIS_DATA_DIR``, then the user cache, then a checked download; see that module), parses the files
into plain typed structures (BEIR-shaped dicts for retrieval, DataFrames for tables) and checks
the row counts against the registry, so a truncated or edited file raises
:class:`~evals.errors.DatasetIntegrityError` instead of silently producing wrong figures.
Loaders return fresh objects on every call; callers may do what they like with them.

>>> data = load_beir("scifact", split="test")          # doctest: +SKIP
>>> len(data.corpus), len(data.queries), len(data.qrels)  # doctest: +SKIP
(5183, 300, 300)
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from evals.errors import DatasetIntegrityError, DatasetNotFoundError
from evals.sources import (
    DATASETS,
    DatasetSpec,
    FileSpec,
    check_rows,
    dataset_summary,
    resolve,
)

# DATASETS, DatasetSpec, FileSpec, dataset_summary and resolve live in evals.sources and are
# re-exported here, so callers need one import for "get me the data".
__all__ = [
    "DATASETS",
    "BeirDataset",
    "DatasetSpec",
    "FileSpec",
    "MovieLens",
    "beir_corpus_file",
    "dataset_summary",
    "load_beir",
    "load_bike_sharing",
    "load_davidson",
    "load_movielens_100k",
    "resolve",
]

# --------------------------------------------------------------------------------------------
# BEIR retrieval datasets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR-format retrieval dataset.

    corpus:      {doc_id: {"title": str, "text": str}}
    queries:     {query_id: text} for the queries judged in ``split``
    qrels:       {query_id: {doc_id: grade}} for ``split`` (grade > 0 means relevant)
    all_queries: every query in queries.jsonl (e.g. to mine training data from other splits)
    """

    name: str
    path: Path
    split: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    all_queries: dict[str, str] = field(repr=False, default_factory=dict)


def _lines(name: str, path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a text file, gzipped if it ends in ``.gz``.

    Decoded line by line, so a byte that is not UTF-8 is reported on the line that holds it, and a
    damaged or cut gzip stream is a :class:`DatasetIntegrityError` naming the file, not a bare
    ``EOFError`` from deep inside gzip.
    """
    line_no = 0
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as f:
            for line_no, raw in enumerate(f, start=1):
                try:
                    yield line_no, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    problem = f"line {line_no} is not UTF-8 ({exc.reason} at byte {exc.start})"
                    raise DatasetIntegrityError(name, path, problem) from exc
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        problem = f"not a readable gzip file (damaged or cut short after line {line_no}): {exc}"
        raise DatasetIntegrityError(name, path, problem) from exc


def _read_jsonl(name: str, path: Path) -> list[dict]:
    rows = []
    for line_no, line in _lines(name, path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problem = f"line {line_no} is not JSON: {exc}"
            raise DatasetIntegrityError(name, path, problem) from exc
        if not isinstance(row, dict):
            problem = f"line {line_no} is a {type(row).__name__}, not a JSON object"
            raise DatasetIntegrityError(name, path, problem)
        rows.append(row)
    return rows


def _read_qrels(name: str, path: Path) -> tuple[dict[str, dict[str, int]], int]:
    qrels: dict[str, dict[str, int]] = {}
    n_rows = 0
    for line_no, line in _lines(name, path):
        parts = line.rstrip("\r\n").split("\t")
        if line_no == 1 and parts[0] == "query-id":
            continue  # BEIR header
        if parts == [""]:
            continue
        if len(parts) != 3:
            raise DatasetIntegrityError(
                name, path, f"line {line_no}: expected 3 tab-separated fields, got {len(parts)}"
            )
        qid, doc_id, grade = parts
        try:
            qrels.setdefault(qid, {})[doc_id] = int(grade)
        except ValueError as exc:
            raise DatasetIntegrityError(
                name, path, f"line {line_no}: grade {grade!r} is not an integer"
            ) from exc
        n_rows += 1
    return qrels, n_rows


def beir_corpus_file(folder: Path) -> Path | None:
    """A BEIR folder's corpus, ``corpus.jsonl`` or ``corpus.jsonl.gz``; None if it has neither."""
    return next(
        (folder / n for n in ("corpus.jsonl", "corpus.jsonl.gz") if (folder / n).is_file()), None
    )


def load_beir(
    name_or_path: str | Path = "scifact",
    split: str = "test",
    data_dir: str | Path | None = None,
) -> BeirDataset:
    """Load a BEIR-format dataset: a registered name (verified) or any BEIR folder (format-checked).

    A folder needs ``corpus.jsonl`` (or ``.jsonl.gz``), ``queries.jsonl`` and ``qrels/<split>.tsv``.
    """
    name = str(name_or_path)
    spec = DATASETS.get(name)
    if spec is not None:
        folder = resolve(name, data_dir)
    else:
        folder = Path(name_or_path).expanduser()
        if not folder.is_dir():
            raise DatasetNotFoundError(
                name,
                [folder],
                "not attempted (not a registered dataset name)",
                f"pass a registered name ({', '.join(DATASETS)}) or a BEIR folder",
            )
        name = folder.name
    corpus_path = beir_corpus_file(folder)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for needed in (corpus_path, folder / "queries.jsonl", qrels_path):
        if needed is None or not needed.is_file():
            missing = needed or folder / "corpus.jsonl"
            raise DatasetNotFoundError(
                name, [folder], "not attempted", f"{missing} is missing: is this a BEIR folder?"
            )

    corpus_rows = _read_jsonl(name, corpus_path)  # type: ignore[arg-type]
    query_rows = _read_jsonl(name, folder / "queries.jsonl")
    qrels, n_judgments = _read_qrels(name, qrels_path)
    if spec is not None:
        by_name = {f.name: f for f in spec.files}
        check_rows(name, corpus_path, len(corpus_rows), by_name["corpus.jsonl"].rows)  # type: ignore[arg-type]
        check_rows(name, folder / "queries.jsonl", len(query_rows), by_name["queries.jsonl"].rows)
        qrels_spec = by_name.get(f"qrels/{split}.tsv")
        check_rows(name, qrels_path, n_judgments, qrels_spec.rows if qrels_spec else None)

    try:
        corpus = {
            str(r["_id"]): {"title": r.get("title") or "", "text": r.get("text") or ""}
            for r in corpus_rows
        }
        all_queries = {str(r["_id"]): r["text"] for r in query_rows}
    except KeyError as exc:
        raise DatasetIntegrityError(name, folder, f"a record has no {exc} field") from exc
    unknown = sorted(q for q in qrels if q not in all_queries)
    if unknown:
        raise DatasetIntegrityError(
            name,
            qrels_path,
            f"{len(unknown)} judged queries missing from queries.jsonl: {unknown[:5]}",
        )
    return BeirDataset(
        name=name,
        path=folder,
        split=split,
        corpus=corpus,
        queries={qid: all_queries[qid] for qid in qrels},
        qrels=qrels,
        all_queries=all_queries,
    )


# --------------------------------------------------------------------------------------------
# Tabular datasets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MovieLens:
    """MovieLens 100K.

    ratings: user_id, item_id, rating (1-5), timestamp (unix seconds); 100,000 rows
    items:   item_id, title, release_date (datetime, NaT if unknown), video_release_date, imdb_url,
             then one 0/1 column per genre named as in u.genre ("unknown", "Action", ...);
             1,682 rows
    users:   user_id, age, gender, occupation, zip_code; 943 rows
    """

    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    genres: list[str]


def load_movielens_100k(data_dir: str | Path | None = None) -> MovieLens:
    name = "movielens-100k"
    folder = resolve(name, data_dir)
    files = {f.name: f for f in DATASETS[name].files}
    genres = [
        line.split("|")[0]
        for line in (folder / "u.genre").read_text(encoding="latin-1").splitlines()
        if line.strip()
    ]
    ratings = pd.read_csv(
        folder / "u.data",
        sep="\t",
        names=["user_id", "item_id", "rating", "timestamp"],
        dtype="int64",
    )
    items = pd.read_csv(
        folder / "u.item",
        sep="|",
        encoding="latin-1",
        names=["item_id", "title", "release_date", "video_release_date", "imdb_url", *genres],
    )
    items["release_date"] = pd.to_datetime(
        items["release_date"], format="%d-%b-%Y", errors="coerce"
    )
    users = pd.read_csv(
        folder / "u.user",
        sep="|",
        names=["user_id", "age", "gender", "occupation", "zip_code"],
        dtype={"zip_code": str},
    )
    for frame, file_name in ((ratings, "u.data"), (items, "u.item"), (users, "u.user")):
        check_rows(name, folder / file_name, len(frame), files[file_name].rows)
    return MovieLens(ratings=ratings, items=items, users=users, genres=genres)


def load_bike_sharing(data_dir: str | Path | None = None) -> pd.DataFrame:
    """UCI Bike Sharing ``hour.csv``: one row per hour, ``dteday`` parsed, 17,379 rows.

    temp, atemp, hum and windspeed are normalised by the publisher (divided by 41, 50, 100, 67).
    """
    name = "bike-sharing"
    path = resolve(name, data_dir) / "hour.csv"
    frame = pd.read_csv(path, parse_dates=["dteday"])
    check_rows(name, path, len(frame), DATASETS[name].files[0].rows)
    return frame


def load_davidson(data_dir: str | Path | None = None) -> pd.DataFrame:
    """Davidson et al. 2017 ``labeled_data.csv``: 24,783 tweets.

    Columns: id (the file's unnamed index), count (annotators), hate_speech, offensive_language,
    neither (votes), class (0 hate, 1 offensive, 2 neither), tweet. Contains offensive text.
    """
    name = "davidson-hate-offensive"
    path = resolve(name, data_dir) / "labeled_data.csv"
    frame = pd.read_csv(path).rename(columns={"Unnamed: 0": "id"})
    check_rows(name, path, len(frame), DATASETS[name].files[0].rows)
    return frame
