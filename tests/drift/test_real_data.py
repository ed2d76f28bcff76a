"""Real UCI Bike Sharing data (slow): the split, a clean real window, a small real incident, CLI."""

import json

import pytest

from drift.features import FEATURES, split_reference
from drift.quality import check_quality

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real():
    from evals.datasets import load_bike_sharing

    return split_reference(load_bike_sharing())


def test_split_is_by_day_and_covers_both_years(real):
    assert len(real.train) + len(real.holdout) == 8645  # all 2011 hours
    assert len(real.future) == 17379 - 8645
    assert not set(real.train["dteday"]) & set(real.holdout["dteday"])
    assert real.future["cnt"].mean() > 1.5 * real.holdout["cnt"].mean()  # the real growth


def test_real_windows_pass_quality_and_celsius_does_not(real):
    window = real.holdout[list(FEATURES)].iloc[:500]
    assert check_quality(window, real.train[list(FEATURES)]).ok
    broken = window.assign(temp=window["temp"] * 41)
    assert {f.kind for f in check_quality(broken, real.train).findings} >= {"out_of_range"}


def test_cli_simulate_and_report(tmp_path, capsys):
    from drift.__main__ import main

    args = ["--windows", "7", "--window-rows", "300", "--onset", "3"]
    assert (
        main(
            ["simulate", "--scenario", "bad_deployment", *args, "--workdir", str(tmp_path / "sim")]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "rollback" in out and "<- onset" in out
    assert (
        main(
            [
                "report",
                "--scenario",
                "data_quality",
                *args,
                "--out",
                str(tmp_path / "r"),
                "--workdir",
                str(tmp_path / "rep"),
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "r" / "triage.json").read_text())
    assert summary["1_data_quality"]["ok"] is False
    assert (tmp_path / "r" / "evidently_drift.html").exists()


def test_cli_rejects_bad_arguments(capsys):
    from drift.__main__ import main

    assert main(["simulate", "--scenario", "bad_deployment", "--onset", "40"]) == 2
    assert "onset must be" in capsys.readouterr().err
