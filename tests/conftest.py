"""Session-wide test setup shared by every system's tests.

* No test may reach a model hub: ``HF_HUB_OFFLINE=1`` (a hub lookup otherwise hangs ~70 s).
* ``llm_base_url`` / ``llm_model``: the real local LLM server (SmolLM2-135M-Instruct served by
  llama.cpp's OpenAI-compatible server). CI starts one and exports ``AIS_LLM_BASE_URL``; without
  it, the first test that asks starts one for the session (needs the ``llm`` extra installed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def llm_model() -> str:
    from llm_client.local_server import DEFAULT_MODEL_ALIAS

    return os.environ.get("AIS_LLM_MODEL", DEFAULT_MODEL_ALIAS)


@pytest.fixture(scope="session")
def llm_base_url(llm_model):
    """Base URL (ending in /v1) of a real OpenAI-compatible server with ``llm_model`` loaded."""
    url = os.environ.get("AIS_LLM_BASE_URL")
    if url:
        yield url.rstrip("/")
        return
    from llm_client.local_server import LocalLLMServer

    with LocalLLMServer(model_alias=llm_model) as server:
        yield server.base_url
