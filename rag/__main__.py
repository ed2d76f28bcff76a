"""Command line: ``python -m rag index|search|ask|eval|train-reranker``.

Examples (the embedding model ships in a pip package; SciFact is downloaded if not found)::

    python -m rag index scifact --index .rag_index     # or a BEIR folder, or a folder of .md/.txt
    python -m rag train-reranker --index .rag_index --dataset scifact
    python -m rag search "vitamin D and cancer risk" --index .rag_index
    python -m rag ask "Does vitamin D lower cancer risk?" --index .rag_index --local
    python -m rag eval --dataset scifact

A dataset name (``scifact``) is read from ``--data-dir DIR`` (``DIR/scifact/``) when given;
without it from ``$AIS_DATA_DIR``, else the download cache, else it is downloaded. Either way its
files' checksums are verified.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from pathlib import Path

from evals.cli import run, shown
from rag.config import CHUNKERS, ENCODERS, FUSIONS, RagConfig, check_threshold
from rag.errors import ConfigError, RagError, RerankerError
from rag.onnx_embedder import default_cache_dir

DEFAULT_INDEX = ".rag_index"
DEFAULT_CACHE = default_cache_dir()  # $AIS_CACHE_DIR/rag, else ~/.cache/ais/rag
RERANKER_FILE = "reranker.json"


def _load_documents(path: str, data_dir: str | None = None):
    from evals.sources import DATASETS
    from rag.documents import (
        documents_from_beir,
        documents_from_folder,
        is_beir_folder,
        read_beir_corpus,
    )
    from rag.errors import DocumentError

    beir_names = sorted(
        name for name, spec in DATASETS.items() if any("corpus" in f.name for f in spec.files)
    )
    if path in beir_names:  # a registered dataset name ("scifact"): its files are verified
        from evals.datasets import load_beir

        corpus = load_beir(path, split="test", data_dir=data_dir).corpus
    elif is_beir_folder(path):  # indexing reads the corpus alone: no queries or qrels needed
        corpus = read_beir_corpus(path)
    elif Path(path).is_dir():
        return documents_from_folder(path)  # refuses a folder without a non-empty file itself
    else:
        raise DocumentError(
            f"{path!r} is neither a folder of .md/.txt files, a BEIR folder, nor a BEIR dataset "
            f"name ({', '.join(beir_names)})"
        )
    docs = documents_from_beir(corpus)
    if not docs:  # a 0-byte corpus.jsonl saved as an empty index replaced the one at --index
        found = f"{len(corpus)} records, all blank" if corpus else "no records"
        raise DocumentError(f"{path} holds no document with a title or text ({found})")
    return docs


def _embedder(config: RagConfig, args):
    """onnxruntime by default (same vectors, faster); falls back to sentence-transformers."""
    from rag.onnx_embedder import make_embedder

    return make_embedder(
        config.model,
        backend=args.encoder,
        batch_size=config.batch_size,
        threads=config.encoder_threads or None,
        cache_dir=args.cache_dir,
    )


def _open(args) -> tuple:
    """Load the index and (if trained) the reranker with its tuned weight and threshold."""
    from rag.index import HybridIndex
    from rag.rerank import LTRReranker
    from rag.retrieval import HybridRetriever

    manifest_model = _manifest_model(args.index)
    index = HybridIndex.load(args.index, _embedder(RagConfig(model=manifest_model), args))
    reranker, threshold = None, None
    folder = index.loaded_from  # INDEX.old while a save is interrupted; not looked up again
    if (folder / RERANKER_FILE).exists():
        reranker = LTRReranker.load(folder / RERANKER_FILE)
        # the reranker learned from the candidates of one fusion at one weight: serve those
        meta = reranker.meta
        try:
            index.config = index.config.replace(
                fusion=meta.get("fusion", index.config.fusion),
                dense_weight=meta.get("dense_weight", index.config.dense_weight),
            )
        except ConfigError as exc:
            raise ConfigError(
                f"{folder / RERANKER_FILE} records settings this code cannot serve "
                f"({exc}); retrain it with `python -m rag train-reranker`"
            ) from exc
        threshold = meta.get("threshold")
    return HybridRetriever(index, reranker=reranker), threshold


def _manifest_model(index_dir: str) -> str:
    from rag.store import index_folder, read_manifest

    # read-only: a save killed mid-swap left the index at INDEX.old, read there until the next save
    return read_manifest(index_folder(index_dir))["model"]


def cmd_index(args) -> int:
    from rag.embedding_cache import EmbeddingCache
    from rag.index import HybridIndex, build_chunker
    from rag.store import check_save_target, index_folder, save_folder

    # before minutes of embedding, not after: a file in the way, a folder that cannot be written
    check_save_target(args.index)
    config = RagConfig(model=args.model, chunker=args.chunker)
    docs = _load_documents(args.path, args.data_dir)
    index = HybridIndex(_embedder(config, args), build_chunker(config), config)
    report = index.upsert(docs, cache=EmbeddingCache(args.cache_dir), progress=True)
    had_reranker = (index_folder(args.index) / RERANKER_FILE).exists()
    # looked up before the save: `--index .` swaps the working folder itself, and a relative
    # path would then name the folder the save just replaced
    folder = save_folder(args.index)
    index.save(folder)
    print(
        f"indexed {len(report.added)} documents as {report.chunks_added} chunks "
        f"({index.chunker.name}, {config.model}) -> {args.index}"
    )
    if had_reranker and not (folder / RERANKER_FILE).exists():
        print(
            f"dropped {RERANKER_FILE} from the index this one replaced: it was trained for "
            "another embedding model or chunker, whose scores this index does not produce; "
            "run `python -m rag train-reranker` for this one"
        )
    elif had_reranker:
        print(
            f"kept {RERANKER_FILE} from the index this one replaced: it was trained on that "
            "corpus; run `python -m rag train-reranker` again if the documents changed much"
        )
    return 0


def cmd_search(args) -> int:
    retriever, _ = _open(args)
    mode = args.mode or ("rerank" if retriever.reranker else "hybrid")
    hits = retriever.search(args.query, args.k, mode=mode)
    print(f"{mode} results for {args.query!r}:")
    for rank, h in enumerate(hits, start=1):
        doc = retriever.index.documents[h.doc_id]
        snippet = shown(retriever.index.chunks[h.chunk_id].text.replace("\n", " "))
        print(f"{rank:>3}. {h.score:8.4f}  {shown(h.doc_id)}  {shown(doc.title[:70])}")
        print(textwrap.indent(textwrap.shorten(snippet, 160), " " * 15))
    return 0


def _check_endpoint(args) -> None:
    """Name the flags a user is missing before any index or model is loaded."""
    from llm_client.config import MODEL_ENV, env_base_url, env_model

    if args.local:
        return
    if not (args.base_url or env_base_url()):
        raise ConfigError(
            "no LLM endpoint: pass --base-url http://host:port/v1, set AIS_LLM_BASE_URL, "
            "or pass --local to start the packaged SmolLM2"
        )
    if not (args.llm_model or env_model()):
        raise ConfigError(f"no model name: pass --llm-model NAME or set {MODEL_ENV}")


def cmd_ask(args) -> int:
    from rag.answer import LLMClientGenerator, RagPipeline
    from rag.documents import utf8_problem

    if not args.question.strip():
        raise ConfigError("question is empty")
    problem = utf8_problem(args.question)
    if problem:  # before an LLM server is started, not at the first retrieval
        raise ConfigError(f"the question holds {problem}")
    check_threshold(args.threshold, "--threshold")  # before the index and the model are loaded
    _check_endpoint(args)
    retriever, threshold = _open(args)
    if args.threshold is not None:
        threshold = args.threshold
    mode = "rerank" if retriever.reranker else "hybrid"
    if threshold is None:
        print(
            "note: no abstention threshold (run `python -m rag train-reranker` to calibrate one, "
            "or pass --threshold): every question goes to the model",
            file=sys.stderr,
        )

    def answer(base_url, model):
        pipe = RagPipeline(
            retriever, LLMClientGenerator(base_url, model), threshold=threshold, mode=mode
        )
        return pipe.ask(args.question)

    if args.local:
        from llm_client.local_server import LocalLLMServer

        with LocalLLMServer() as server:
            ans = answer(server.base_url, server.model)
    else:
        ans = answer(args.base_url, args.llm_model)
    print(shown(ans.text))
    gate = "no threshold" if threshold is None else f"threshold {threshold:.3f}"
    print(
        f"\nconfidence {ans.confidence:.3f} ({gate}), "
        f"{'abstained' if ans.abstained else 'answered'} in {ans.latency_s:.1f}s"
    )
    for s in ans.sources:
        mark = "*" if s in ans.cited else " "
        cut = "  (truncated)" if s.truncated else "  (extract)" if s.condensed else ""
        print(f" {mark}[{s.number}] {shown(s.doc_id)}  {shown(s.title[:70])}{cut}")
    if ans.invalid_citations:
        print(f"invalid citations (no such source): {ans.invalid_citations}")
    if ans.dropped:
        print(f"left out for lack of room: {len(ans.dropped)} chunks")
    return 0


def cmd_eval(args) -> int:
    from evals.datasets import load_beir
    from evals.errors import DatasetError
    from rag.documents import documents_from_beir
    from rag.embedding_cache import EmbeddingCache
    from rag.eval import METRICS, fit_on_train, run_queries
    from rag.index import HybridIndex, build_chunker
    from rag.retrieval import HybridRetriever

    config = RagConfig(model=args.model, chunker=args.chunker, fusion=args.fusion)
    test = load_beir(args.dataset, split=args.split, data_dir=args.data_dir)
    index = HybridIndex(_embedder(config, args), build_chunker(config), config)
    index.upsert(
        documents_from_beir(test.corpus), cache=EmbeddingCache(args.cache_dir), progress=True
    )
    retriever = HybridRetriever(index)
    modes = ["bm25", "dense", "hybrid"]
    try:
        train = load_beir(args.dataset, split="train", data_dir=args.data_dir)
    except DatasetError:  # a dataset without a train split (qrels/train.tsv)
        train = None
        print(
            f"{args.dataset} has no train split (qrels/train.tsv): fusion weight stays "
            f"{config.dense_weight}, no reranker"
        )
    if train is not None:
        tuned = fit_on_train(retriever, train.queries, train.qrels, progress=True)
        retriever.reranker = tuned.reranker
        modes.append("rerank")
        print(f"tuned on {len(train.queries)} train queries: dense weight {tuned.dense_weight}")
    retriever.embed(list(test.queries.values()), progress=True)
    print(f"{'mode':<8}" + "".join(f"{m:>12}" for m in METRICS))
    for mode in modes:
        res = run_queries(
            lambda q, m=mode: retriever.search(q, 100, mode=m), test.queries, test.qrels
        )
        print(f"{mode:<8}" + "".join(f"{res.metrics[m]:>12.4f}" for m in METRICS))
    return 0


def cmd_train_reranker(args) -> int:
    from evals.datasets import load_beir
    from evals.files import writable_folder
    from rag.eval import fit_on_train
    from rag.store import read_manifest, writer_lock

    # The reranker goes beside the index it was trained on: the folder the load read, INDEX.old
    # while a save is interrupted (the next save renames that folder back, reranker.json with
    # it). Writing to INDEX itself would create a folder holding only reranker.json, which is no
    # index and which `index` then refuses to save over. Looking the folder up again by name
    # could answer differently if a save was interrupted or recovered since the load.
    retriever, _ = _open(args)
    index = retriever.index
    try:  # before minutes of training, not at the write after them
        writable_folder(index.loaded_from)
    except OSError as exc:
        raise RerankerError(
            f"cannot write {RERANKER_FILE} into the index folder {index.loaded_from}: "
            f"{exc.strerror or exc}; train where the index can be written (copy it there)"
        ) from exc
    train = load_beir(args.dataset, split="train", data_dir=args.data_dir)
    tuned = fit_on_train(retriever, train.queries, train.qrels, progress=True)
    # Training takes minutes, and a save in another process swaps a new version into the same
    # folder name: written by name, the reranker would sit beside a version it never saw (maybe
    # another model's cosines, another chunking), and search would serve it. The manifest holds
    # every file's checksum, so an unchanged one means the same index. The check and the write
    # hold the index's writer lock, so no save can swap a version in between them.
    with writer_lock(args.index):
        try:
            unchanged = read_manifest(index.loaded_from) == index.loaded_manifest
        except RagError:  # the folder is gone or holds no readable index any more
            unchanged = False
        if not unchanged:
            raise RerankerError(
                f"the index at {args.index} was replaced by another save while the reranker "
                f"trained on the version read from {index.loaded_from}; nothing was written. "
                "Run `python -m rag train-reranker` again once that save has finished."
            )
        path = tuned.reranker.save(index.loaded_from / RERANKER_FILE)
    meta = tuned.reranker.meta
    print(
        f"trained LambdaRank on {meta['train_queries']} train queries ({meta['train_pairs']} "
        f"pairs, {meta['n_trees']} trees) in {tuned.train_seconds:.1f}s -> {path}"
    )
    print(f"dense weight {tuned.dense_weight}, abstention threshold {tuned.threshold:.4f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir(p):
        p.add_argument(
            "--data-dir",
            default=None,
            help="folder holding <dataset>/ for a dataset name such as scifact (default: "
            "$AIS_DATA_DIR, else the download cache, else a download)",
        )

    def common(p, index=True):
        if index:
            p.add_argument("--index", default=DEFAULT_INDEX, help="index folder")
        p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="embedding cache folder")
        p.add_argument(
            "--encoder",
            default=RagConfig.encoder,
            choices=ENCODERS,
            help="query/document encoder: onnxruntime (default) or plain sentence-transformers",
        )

    p = sub.add_parser("index", help="index a BEIR folder, a dataset name or a folder of .md/.txt")
    p.add_argument("path")
    p.add_argument("--model", default=RagConfig.model)
    p.add_argument("--chunker", default=RagConfig.chunker, choices=CHUNKERS)
    data_dir(p)
    common(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="search the index")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--mode", choices=("bm25", "dense", "hybrid", "rerank"))
    common(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="answer a question with citations (or abstain)")
    p.add_argument("question")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint incl. /v1 ($AIS_LLM_BASE_URL)")
    p.add_argument("--llm-model", help="model name at that endpoint ($AIS_LLM_MODEL)")
    p.add_argument("--local", action="store_true", help="start the local SmolLM2 server")
    p.add_argument("--threshold", type=float, help="override the calibrated abstention threshold")
    common(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("eval", help="evaluate every retrieval mode on a BEIR folder")
    p.add_argument("--dataset", default="scifact", help="BEIR folder or dataset name")
    p.add_argument("--split", default="test")
    p.add_argument("--model", default=RagConfig.model)
    p.add_argument("--chunker", default=RagConfig.chunker, choices=CHUNKERS)
    p.add_argument("--fusion", default=RagConfig.fusion, choices=FUSIONS)
    data_dir(p)
    common(p, index=False)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train-reranker", help="tune fusion, train LambdaRank, calibrate abstention")
    p.add_argument("--dataset", default="scifact", help="BEIR folder with qrels/train.tsv")
    data_dir(p)
    common(p)
    p.set_defaults(func=cmd_train_reranker)

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from evals.errors import DatasetError
    from llm_client.errors import LLMClientError

    try:
        return args.func(args)
    except (RagError, DatasetError, LLMClientError) as exc:
        print(f"error: {shown(str(exc))}", file=sys.stderr)  # may name a file or quote a server
        return 2


if __name__ == "__main__":
    sys.exit(run(main))  # Ctrl-C: `interrupted`, status 130; `| head`: status 1; no traceback
