import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moderation.__main__ import main

from .conftest import damage_sqlite_file

ROOT = Path(__file__).resolve().parents[2]


def _run(capsys, *args: str) -> tuple[int, dict | str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 and out.strip().startswith("{") else out + err)


def test_queue_workflow_through_the_cli(tmp_path, capsys):
    db = str(tmp_path / "q.sqlite")
    code, out = _run(capsys, "queue", "--db", db, "enqueue", "some text", "--label", "hate",
                     "--score", "0.7", "--reach", "50")  # fmt: skip
    assert code == 0 and out["pending"] == 1
    item = out["item_id"]
    code, out = _run(capsys, "queue", "--db", db, "next", "--reviewer", "alice")
    assert code == 0 and out["item_id"] == item
    code, out = _run(capsys, "queue", "--db", db, "decide", item, "--reviewer", "alice",
                     "--outcome", "violation")  # fmt: skip
    assert code == 0 and out["decision"]["outcome"] == "violation"
    code, out = _run(capsys, "queue", "--db", db, "appeal", item, "--user", "poster")
    appeal = out["appeal_item_id"]
    code, out = _run(capsys, "queue", "--db", db, "next", "--reviewer", "Alice")
    assert out["item_id"] is None  # the original reviewer never gets the appeal
    assert out["pending"] == 1 and "queue is empty" not in out["message"]
    code, out = _run(capsys, "queue", "--db", db, "next", "--reviewer", "bob")
    assert out["item_id"] == appeal and out["original_outcome"] == "violation"
    _run(capsys, "queue", "--db", db, "decide", appeal, "--reviewer", "bob",
         "--outcome", "no_violation")  # fmt: skip
    assert main(["queue", "--db", db, "overturns"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(x)["value"] for x in lines] == [0]
    assert main(["queue", "--db", db, "audit", item]) == 0
    events = [json.loads(x)["event"] for x in capsys.readouterr().out.strip().splitlines()]
    assert events[0] == "enqueued" and events[-1] == "overturned" and "appealed" in events


def test_errors_are_one_line_with_exit_status_2(tmp_path, capsys):
    db = str(tmp_path / "q.sqlite")
    code, out = _run(capsys, "queue", "--db", db, "decide", "nope", "--reviewer", "a",
                     "--outcome", "violation")  # fmt: skip
    assert code == 2 and out.startswith("error: no review item 'nope'")
    code, out = _run(capsys, "classify", "hello", "--model", str(tmp_path / "none.pkl"))
    assert code == 2 and "python -m moderation train" in out
    (tmp_path / "junk.pkl").write_text("not a pickle")
    code, out = _run(capsys, "classify", "hello", "--model", str(tmp_path / "junk.pkl"))
    assert code == 2 and "is not a model file" in out
    code, out = _run(capsys, "classify", "hello", "--model", str(tmp_path))
    assert code == 2 and "is not a file" in out
    (tmp_path / "other.pkl").write_bytes(pickle.dumps({"format": 1, "model": {"not": "a model"}}))
    code, out = _run(capsys, "classify", "hello", "--model", str(tmp_path / "other.pkl"))
    assert code == 2 and out.startswith(f"error: {tmp_path / 'other.pkl'} holds a dict under")
    code, out = _run(capsys, "train", "--data-dir", str(tmp_path / "typo"))
    assert code == 2 and "davidson-hate-offensive" in out and out.startswith("error:")
    code, out = _run(capsys, "queue", "--db", db, "audit", "nope")
    assert code == 2 and out.startswith("error: no review item 'nope'")
    for flag, value in (("--score", "nan"), ("--score", "1.7"), ("--reach", "-20"),
                        ("--reach", "99999999999999999999")):  # fmt: skip
        code, out = _run(capsys, "queue", "--db", db, "enqueue", "t", "--label", "hate",
                         "--score", "0.5", flag, value)  # fmt: skip
        assert code == 2 and out.startswith("error:") and out.count("\n") == 1, (flag, value)
    code, out = _run(capsys, "queue", "--db", str(tmp_path / "junk.pkl"), "next",
                     "--reviewer", "a")  # fmt: skip
    assert code == 2 and "cannot open review queue" in out


def test_queue_lease_comes_from_the_flag(tmp_path, capsys):
    db = str(tmp_path / "q.sqlite")
    _run(capsys, "queue", "--db", db, "enqueue", "t", "--label", "hate", "--score", "0.5")
    before = time.time()
    code, out = _run(capsys, "queue", "--db", db, "--lease-seconds", "5", "next",
                     "--reviewer", "a")  # fmt: skip
    assert code == 0 and before + 4 < out["lease_expires_at"] < time.time() + 6


def test_an_infinite_lease_is_refused_with_one_error_line(tmp_path, capsys):
    # Found by a review: "--lease-seconds inf" printed "lease_expires_at": Infinity (not JSON)
    # and the item never came back to the queue.
    db = str(tmp_path / "q.sqlite")
    _run(capsys, "queue", "--db", db, "enqueue", "t", "--label", "hate", "--score", "0.5")
    for lease in ("inf", "1e400"):
        code, out = _run(capsys, "queue", "--db", db, "--lease-seconds", lease, "next",
                         "--reviewer", "a")  # fmt: skip
        assert code == 2 and out.startswith("error: lease_seconds") and out.count("\n") == 1


def test_classify_with_a_saved_model(trained_model, tmp_path, capsys):
    path = tmp_path / "m.pkl"
    trained_model.save(path)
    code, out = _run(capsys, "classify", "zorg blarg walk", "--model", str(path))
    assert code == 0 and out["path"] in ("auto_action", "review")
    assert out["scores"]["hate"] > 0.5 and out["label"] in ("hate", "offensive")


def test_module_entry_point_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "moderation", "queue", "--db", str(tmp_path / "q.sqlite"),
         "next", "--reviewer", "a"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["item_id"] is None


def test_classify_serves_with_the_options_saved_by_train(
    trained_model, tmp_path, capsys, monkeypatch
):
    import copy

    import moderation.pipeline

    built = []

    class Recording(moderation.pipeline.Moderator):
        def __init__(self, model, *args, **kwargs):
            super().__init__(model, *args, **kwargs)
            built.append(self)

    monkeypatch.setattr(moderation.pipeline, "Moderator", Recording)
    model = copy.copy(trained_model)
    model.serving_options = {"identity_guard": True, "require_parent": True}
    path = tmp_path / "guarded.pkl"
    model.save(path)
    code, out = _run(capsys, "classify", "muslim zorg blarg walk", "--model", str(path))
    assert code == 0 and out["label"] in ("hate", "offensive")
    assert built[-1].identity_guard and built[-1].requires == {"hate": "offensive"}


def test_next_says_when_the_reviewer_already_holds_the_pending_items(tmp_path, capsys):
    db = str(tmp_path / "q.sqlite")
    for text in ("one", "two"):
        _run(capsys, "queue", "--db", db, "enqueue", text, "--label", "hate", "--score", "0.5")
    _run(capsys, "queue", "--db", db, "next", "--reviewer", "alice")
    code, out = _run(capsys, "queue", "--db", db, "next", "--reviewer", "bob")
    assert code == 0 and out["item_id"] is not None
    code, out = _run(capsys, "queue", "--db", db, "next", "--reviewer", "Alice")
    assert code == 0 and out["item_id"] is None and out["pending"] == 2
    assert "'Alice' holds live leases on 1 of the 2 pending" in out["message"]
    assert "the other 1 are leased to other reviewers" in out["message"]
    code, out = _run(capsys, "queue", "--db", db, "next", "--reviewer", "carol")
    assert "holds live leases" not in out["message"] and "leased to other" in out["message"]


def test_a_damaged_queue_file_is_one_error_line(tmp_path, capsys):
    # found by a review: `queue next` on a queue damaged after its header printed a 15-line
    # sqlite3.DatabaseError traceback with exit 1
    db = tmp_path / "q.sqlite"
    for i in range(300):
        _run(capsys, "queue", "--db", str(db), "enqueue", f"post number {i} " * 20,
             "--label", "hate", "--score", "0.6")  # fmt: skip
    damage_sqlite_file(db)
    code, out = _run(capsys, "queue", "--db", str(db), "next", "--reviewer", "alice")
    assert code == 2 and out.startswith(f"error: review queue {db} is damaged")
    assert out.count("\n") == 1


@pytest.mark.parametrize("where", ["a folder", "under a file"])
def test_train_refuses_a_model_path_it_cannot_write_before_loading_the_data(
    tmp_path, capsys, where
):
    # found by a review: the fit and the test evaluation ran first, then the save died with a
    # traceback. The data folder here does not exist: the model path must be refused before it.
    (tmp_path / "plain").write_text("a file")
    model = tmp_path / "models" if where == "a folder" else tmp_path / "plain" / "model.pkl"
    if where == "a folder":
        model.mkdir()
    code, out = _run(capsys, "train", "--data-dir", str(tmp_path / "none"), "--model", str(model))
    reason = "it is a directory" if where == "a folder" else f"{tmp_path / 'plain'} is a file"
    assert code == 2 and out == f"error: cannot save the model to {model}: {reason}" + (
        f"; pass a file path, e.g. {model / 'model.pkl'}\n"
        if where == "a folder"
        else "; pass a path in a folder you can write to\n"
    )


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_train_refuses_a_seed_numpy_cannot_take_before_loading_the_data(tmp_path, capsys, seed):
    # found by a review: the data loaded, then scikit-learn's InvalidParameterError traceback
    code, out = _run(capsys, "train", "--data-dir", str(tmp_path / "none"), "--seed", seed,
                     "--model", str(tmp_path / "m.pkl"))  # fmt: skip
    assert code == 2
    assert out == f"error: seed must be a whole number from 0 to 4294967295, got {seed}\n"


def test_train_refuses_a_folder_no_file_can_be_written_in_before_loading_the_data(tmp_path, capsys):
    # found by a review: --model /sys/m.pkl passed the check (the folder exists) and the save
    # failed after ~12 s of training. /sys refuses new files even to root, whom permission
    # bits let write anywhere; the data folder does not exist, so the check must come first.
    if not Path("/sys/kernel").is_dir():
        pytest.skip("needs Linux's /sys")
    code, out = _run(capsys, "train", "--data-dir", str(tmp_path / "none"),
                     "--model", "/sys/m.pkl")  # fmt: skip
    assert code == 2 and out.count("\n") == 1
    assert out.startswith(
        "error: cannot save the model to /sys/m.pkl: no file can be written in /sys"
    )


def _dataset_present() -> bool:
    from evals.errors import DatasetError
    from evals.sources import resolve

    try:
        resolve("davidson-hate-offensive", download=False)
    except DatasetError:
        return False
    return True


@pytest.mark.slow  # reads the real Davidson file
def test_ctrl_c_during_train_ends_with_one_line_and_status_130(tmp_path):
    # found by a review: a 30-line KeyboardInterrupt traceback. The model's folder is created
    # by the path check, after the imports and before the data loads and the model fits (~12 s),
    # so a SIGINT sent once it exists lands in the work, as a Ctrl-C would.
    if not _dataset_present():
        pytest.skip("needs the Davidson dataset (AIS_DATA_DIR or the cache)")
    model = tmp_path / "models" / "m.pkl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moderation", "train", "--model", str(model)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a shell's background job ignores SIGINT, and children inherit that: restore it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not model.parent.is_dir() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err == "interrupted\n" and out == "", (out, err)
    assert not model.exists()


def test_a_reader_that_has_gone_ends_with_status_1_and_no_traceback(tmp_path):
    # found by a review: `... | head -1` ended in a BrokenPipeError traceback. The pipe's read
    # end is closed before the command starts, so its first output finds no reader.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "moderation", "queue", "--db", str(tmp_path / "q.sqlite"),
             "next", "--reviewer", "a"],
            cwd=ROOT, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert result.returncode == 1 and result.stderr == ""
