"""The CLI on a tiny saved model: output, and errors as exit code 2 with a clear message."""

from __future__ import annotations

import pytest

from recsys.__main__ import main
from recsys.config import RecsysConfig
from recsys.recommender import TwoStageRecommender
from tests.recsys.test_leakage import TINY


@pytest.fixture(scope="module")
def model_dir(frames, catalog, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    TwoStageRecommender(catalog, RecsysConfig(seed=0, **TINY)).fit(frames[0]).save(folder)
    return folder


def test_recommend_prints_titles_scores_and_sources(model_dir, capsys):
    assert main(["recommend", "3", "-k", "3", "--model-dir", str(model_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("user 3: top-3")
    assert out.count("Movie ") == 3


def test_errors_exit_2_with_a_message(model_dir, tmp_path, capsys):
    assert main(["recommend", "3", "-k", "0", "--model-dir", str(model_dir)]) == 2
    assert "k must be a positive integer" in capsys.readouterr().err
    assert main(["recommend", "3", "--model-dir", str(tmp_path / "none")]) == 2
    assert "no saved model" in capsys.readouterr().err
