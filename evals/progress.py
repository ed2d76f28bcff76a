"""Loading a model in a library call without a progress bar on stderr.

transformers 5 draws a "Loading weights" tqdm bar whenever a model loads, ``encode(progress=False)``
included; a library call draws none (bars belong to CLIs and benchmarks, STYLE rule 8). rag's
embedder and reranker and moderation's embedding features all load models, so the switch lives
here once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["quiet_model_load"]


@contextlib.contextmanager
def quiet_model_load() -> Iterator[None]:
    """Turn off transformers' progress bars for the block, then restore what was set before.

    The setting is global, so it is put back as it was rather than switched on. transformers'
    switch also flips huggingface_hub's, so that one is put back too (a hub setting for one named
    group is not: re-enabling clears those).
    """
    from huggingface_hub import utils as hub
    from transformers.utils import logging as transformers_logging

    if not transformers_logging.is_progress_bar_enabled():  # already quiet: nothing to restore
        yield
        return
    hub_was_disabled = hub.are_progress_bars_disabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.enable_progress_bar()
        if hub_was_disabled:  # enable_progress_bar turned the hub's bars on as well
            hub.disable_progress_bars()
