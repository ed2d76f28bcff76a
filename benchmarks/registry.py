"""The registered system benchmarks: name -> module holding ``DESCRIPTION`` and ``run(ctx)``.

Modules are imported only when their benchmark runs (in its own process), so a slow import or a
broken optional dependency in one system never stops another from being listed or run.
"""

BENCHMARKS: dict[str, str] = {
    "drift": "benchmarks.drift",
    "harness": "benchmarks.harness",
    "llm_client": "benchmarks.llm_client",
    "moderation": "benchmarks.moderation",
    "recsys": "benchmarks.recsys",
    "rag": "benchmarks.rag",
}

# The benchmarks that read ``--dataset`` (``BenchContext.dataset``); the runner refuses the flag
# for a run that includes any other, rather than ignore it there.
TAKES_DATASET: frozenset[str] = frozenset({"rag"})

# The benchmarks that read ``--seed`` (``BenchContext.seed``); the runner refuses an explicit
# ``--seed`` for a run that includes any other, as it does ``--dataset``. recsys is not here: its
# split seeds (42-44) are fixed by the published protocol it is compared with, so a seed given on
# the command line would change nothing but the record's "seed" field.
TAKES_SEED: frozenset[str] = frozenset({"drift", "harness", "llm_client", "moderation", "rag"})

# Each system's error for a setting outside its valid range (a seed, a threshold, a model name),
# as "module.Class". A child that fails with one exits with runner.EXIT_CONFIG, and its earlier
# record is kept: nothing was measured, so nothing about that record was contradicted. recsys has
# none (its InvalidArgumentError also covers bad calls deep inside a fit, which are crashes).
CONFIG_ERRORS: tuple[str, ...] = (
    "drift.errors.ConfigError",
    "llm_client.errors.ConfigurationError",
    "moderation.errors.ConfigError",
    "rag.errors.ConfigError",
)
