"""Every benchmark-runner test runs in its own empty folder, so the runner's relative defaults
(``results/``, ``results/cache``) land in that folder and never in the checkout's own records."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _in_an_empty_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
