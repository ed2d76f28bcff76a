"""The benchmark record: what a system benchmark returns, and the JSON file the runner writes.

A system benchmark is a function ``run(ctx: BenchContext) -> BenchResult``. It measures; it does not
format. The runner wraps the result into one self-describing JSON record per system
(``results/<system>.json``) with everything needed to judge a figure later: the dataset and its
checksums, the configuration, the machine and library versions, the git commit, the duration and
the peak memory. :mod:`benchmarks.report` turns records into tables in a separate step, so a table
can always be re-rendered from the records without re-running anything.

Record layout (keys in this order)::

    system, description, quick, status, dataset, config, machine, git_sha, started_at,
    duration_s, peak_rss_mb, rows, anchors, notes, not_measured

``status`` is ``"ok"`` when every part of the benchmark ran as planned, ``"partial"`` when
``not_measured`` names a part that did not run or ran on less than planned (no local model, a
dataset without a train split, answers cut by the time budget), each with its reason. A benchmark
that fails writes no record at all (the runner sets the old one aside), so a record is never
``"failed"``.

``rows`` is a list of ``Row`` dicts: ``{"variant", "table", "metrics", "timings", "ci", "extra"}``.
A record is strict JSON, readable by any parser: JSON has no NaN or infinity, so a figure that is
undefined (the delay of a shift never detected) or unreachable (an auto-action threshold no cut
meets, ``inf`` in Python) is written as ``null``, and the report shows it as "n/a".
``anchors`` is a list of ``Anchor`` dicts: the published reference figures the rows are compared
with, each naming its protocol and source.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from evals.files import written_atomically

__all__ = ["Anchor", "BenchContext", "BenchResult", "Row", "git_sha", "machine_info", "write"]

# Library versions worth recording next to a figure (missing ones are recorded as null).
LIBRARIES = (
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "torch",
    "sentence-transformers",
    "transformers",
    "faiss-cpu",
    "onnxruntime",
    "onnx",
    "bm25s",
    "rank-bm25",
    "lightgbm",
    "implicit",
    "evidently",
    "httpx",
    "tenacity",
    "diskcache",
    "llama_cpp_python",
)


@dataclass
class BenchContext:
    """What the runner hands to a system benchmark."""

    data_dir: Path | None  # None: the loaders' own resolution (AIS_DATA_DIR, cache, download)
    quick: bool  # a small, fast subset for smoke runs; the record is labelled as such
    out_dir: Path
    cache_dir: Path  # persistent cache for embeddings and trained models (results/cache)
    seed: int = 0
    dataset: str | None = None  # e.g. rag's --dataset PATH (any BEIR folder)
    progress: bool = True  # show tqdm bars (benchmarks do; library calls in tests never do)


@dataclass
class Row:
    """One measured variant. ``table`` groups rows into separate report tables."""

    variant: str
    metrics: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)
    table: str = "main"
    ci: dict[str, list[float]] = field(default_factory=dict)  # metric -> [low, high]
    extra: dict = field(default_factory=dict)


@dataclass
class Anchor:
    """A published reference figure. ``variant`` names our row it is compared with."""

    name: str
    metric: str
    value: float
    protocol: str
    source: str
    variant: str | None = None
    table: str = "main"


@dataclass
class BenchResult:
    dataset: dict
    config: dict
    rows: list[Row]
    anchors: list[Anchor] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # parts that did not run, or ran on less than planned, each with why; any makes it "partial"
    not_measured: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "partial" if self.not_measured else "ok"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "libraries": versions,
    }


def git_sha(cwd: Path | None = None) -> str | None:
    """The commit the code ran at, with ``-dirty`` if the work tree had uncommitted changes.

    Untracked files count (a run may import a new module that no commit holds); files that
    ``.gitignore`` covers (the venv, caches) do not."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        # results/ is where records are written, so a run in progress must not count as a change
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", ".", ":!results"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def write(record: dict, path: Path) -> None:
    """Write a record atomically (a crash mid-write never leaves half a JSON file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_atomically(path) as tmp:  # two runs may share one results folder
        plain = json.loads(json.dumps(record, default=_jsonable))  # numpy, paths, sets: plain
        tmp.write_text(json.dumps(_finite(plain), indent=2, allow_nan=False) + "\n")


def result_to_dict(result: BenchResult) -> dict:
    return {
        "dataset": result.dataset,
        "config": result.config,
        "rows": [asdict(row) for row in result.rows],
        "anchors": [asdict(anchor) for anchor in result.anchors],
        "notes": list(result.notes),
        "not_measured": list(result.not_measured),
    }


def _finite(value: object) -> object:
    """``value`` with every NaN or infinite float replaced by None (JSON's null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _jsonable(value: object) -> object:
    """numpy scalars and arrays, paths and sets, which json cannot serialise on its own."""
    if hasattr(value, "tolist"):  # a numpy scalar gives a Python number, an array a list
        return value.tolist()  # type: ignore[union-attr]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
