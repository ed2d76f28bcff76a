"""The benchmark runner: ``python -m benchmarks`` reproduces every figure in the READMEs.

__main__.py   the CLI: pick systems, --quick, --list, --data-dir, --out
runner.py     runs each system benchmark in its own process, writes its record
record.py     BenchContext / BenchResult / Row / Anchor and the JSON record
report.py     renders records into REPORT.md (and the root README's table)
registry.py   name -> module of each system benchmark
harness.py    the benchmark of the shared evaluation harness itself
<system>.py   one module per system (rag, llm_client, drift, recsys, moderation)
rag_answers.py    rag's answer-level check: grounded answers from the local LLM, recorded on disk
rag_chunking.py   rag's chunking ablation and the sub-corpora it and the quick mode run on
rag_speed.py      rag's speed tables: BM25 backends, per-stage latency, encoders, HNSW
"""

from benchmarks.record import Anchor, BenchContext, BenchResult, Row

__all__ = ["Anchor", "BenchContext", "BenchResult", "Row"]
