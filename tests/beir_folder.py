"""Write a tiny, well-formed BEIR folder for tests that load one from disk.

The BEIR layout (Thakur et al., 2021, "BEIR: A Heterogeneous Benchmark for Zero-shot Evaluation
of Information Retrieval Models") is three UTF-8 text files::

    corpus.jsonl       {"_id": "d1", "title": "...", "text": "..."}, one document a line
    queries.jsonl      {"_id": "q1", "text": "..."}, one query a line
    qrels/<split>.tsv  a "query-id  corpus-id  score" header, then one tab-separated judgment a line

:func:`write_beir_folder` takes the dicts that :func:`evals.datasets.load_beir` returns, so a test
states its data in the shape it asserts on. A test about damaged bytes writes a good folder with
it, then overwrites the one file it damages: the damage is all it writes by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path


def write_beir_folder(
    folder: Path,
    corpus: Mapping[str, Mapping[str, str]],
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    splits: Iterable[str] = ("test",),
) -> Path:
    """Write ``corpus``, ``queries`` and the same ``qrels`` for every split into ``folder``.

    ``corpus`` maps a document id to its fields, ``{"title": ..., "text": ...}`` (either may be
    left out, as in some real corpora); ``queries`` maps a query id to its text; ``qrels`` maps a
    query id to ``{document id: grade}``. Every line ends in ``\\n``. Returns ``folder``.
    """
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    documents = [{"_id": doc_id, **fields} for doc_id, fields in corpus.items()]
    _write_lines(folder / "corpus.jsonl", [json.dumps(d) for d in documents])
    _write_lines(
        folder / "queries.jsonl",
        [json.dumps({"_id": qid, "text": text}) for qid, text in queries.items()],
    )
    judgments = [f"{q}\t{d}\t{grade}" for q, graded in qrels.items() for d, grade in graded.items()]
    for split in splits:
        _write_lines(folder / "qrels" / f"{split}.tsv", ["query-id\tcorpus-id\tscore", *judgments])
    return folder


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
