import dataclasses
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evals.classification import pr_auc
from moderation.classifier import (
    FORMAT_VERSION,
    ModerationModel,
    check_model_path,
    three_class,
    tune_hate_threshold,
)
from moderation.errors import (
    CategoryError,
    ConfigError,
    InvalidTextError,
    ModerationError,
    NotTrainedError,
    UnsafeModelError,
)
from moderation.policy import LabelThresholds, choose_thresholds

from .conftest import make_corpus

ROOT = Path(__file__).resolve().parents[2]


def test_heads_learn_the_marker_words(trained_model):
    texts, labels, y3 = make_corpus(300, seed=7)
    probs = trained_model.predict_proba(texts)
    for name in ("hate", "offensive"):
        assert pr_auc(labels[name], probs[name]) > 0.95
    pred = three_class(probs["hate"], probs["offensive"], 0.5)
    assert (pred == y3).mean() > 0.95


def test_hierarchy_scores_child_as_parent_times_conditional(trained_model):
    x = trained_model.features.transform(trained_model.prepare(["zorg blarg walk", "sunny day"]))
    raw = trained_model.raw_scores(["zorg blarg walk", "sunny day"])
    off = trained_model.heads["offensive"].predict_proba(x)[:, 1]
    cond = trained_model.heads["hate"].predict_proba(x)[:, 1]
    np.testing.assert_allclose(raw["hate"], off * cond)


def test_soft_targets_equal_cross_entropy_on_duplicated_rows(small_config):
    # A soft target of 1.0 everywhere a label is 1 (and 0.0 elsewhere) is the hard fit exactly.
    from moderation.classifier import _fit_head

    texts, labels, _ = make_corpus(200, seed=3)
    model = ModerationModel(small_config)
    x = model.features.fit_transform(texts)
    hard = _fit_head(x, labels["offensive"], 1.0, None)
    soft = _fit_head(x, labels["offensive"].astype(float), 1.0, None)
    np.testing.assert_allclose(hard.coef_, soft.coef_)
    # and a 0.5 share pulls the probability towards 0.5
    half = _fit_head(x, np.where(labels["offensive"] == 1, 0.5, 0.0), 1.0, None)
    assert half.predict_proba(x)[labels["offensive"] == 1, 1].mean() < 0.6


def test_tuned_hate_threshold_maximises_validation_f1():
    p_hate = np.array([0.9, 0.35, 0.3, 0.2, 0.1])
    p_off = np.array([0.9, 0.9, 0.9, 0.9, 0.1])
    y3 = np.array([0, 0, 1, 1, 2])
    t = tune_hate_threshold(p_hate, p_off, y3)
    assert 0.3 < t <= 0.35  # catches both hate items, no offensive one


def test_new_category_leaves_existing_heads_untouched(trained_model):
    import copy

    model = copy.deepcopy(trained_model)
    before = {k: h.coef_.copy() for k, h in model.heads.items()}
    spam = [
        f"buy cheap pills now {w} click" for w in ("today", "fast", "win", "free", "deal", "cash")
    ]
    ham = ["sunny day walk park", "coffee with a friend", "music book game", "team city river",
           "walk by the river", "a good book"]  # fmt: skip
    model.add_category("spam", spam + ham, np.array([1] * 6 + [0] * 6))
    for name, coef in before.items():
        np.testing.assert_array_equal(model.heads[name].coef_, coef)
    probs = model.predict_proba(["buy cheap pills click now", "a walk in the park"])
    assert probs["spam"][0] > probs["spam"][1]
    with pytest.raises(CategoryError, match="exists"):
        model.add_category("spam", spam + ham, np.array([1] * 6 + [0] * 6))
    with pytest.raises(CategoryError, match="need >= 4"):
        model.add_category("other", spam[:2] + ham, np.array([1] * 2 + [0] * 6))


def test_save_load_roundtrip(trained_model, tmp_path):
    path = tmp_path / "m.pkl"
    trained_model.save(path)
    loaded = ModerationModel.load(path)
    texts = ["zorg blarg walk", "sunny day"]
    np.testing.assert_allclose(
        loaded.predict_proba(texts)["hate"], trained_model.predict_proba(texts)["hate"]
    )
    assert loaded.thresholds == trained_model.thresholds
    with pytest.raises(NotTrainedError, match="no model at"):
        ModerationModel.load(tmp_path / "missing.pkl")


@pytest.mark.parametrize("calibration_method", ["isotonic", "sigmoid", "none"])
@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_every_kind_of_model_loads_through_the_restricted_unpickler(
    small_config, calibration_method, class_weight, tmp_path
):
    # load() resolves only SAFE_GLOBALS: each calibrator, class weight and an added category
    # must be made of those names, or a model train writes could not be loaded
    config = dataclasses.replace(
        small_config, calibration=calibration_method, class_weight=class_weight
    )
    texts, labels, _ = make_corpus(200, seed=1)
    val_texts, val_labels, _ = make_corpus(300, seed=2)
    model = ModerationModel(config).fit(
        texts, {k: v.astype(float) for k, v in labels.items()}, val_texts, val_labels
    )
    model.thresholds = choose_thresholds(model.predict_proba(val_texts), val_labels, config)
    model.add_category("spam", val_texts[:40], np.arange(40) % 3 == 0)
    model.save(tmp_path / "m.pkl")
    loaded = ModerationModel.load(tmp_path / "m.pkl")
    for label, p in model.predict_proba(val_texts[:20]).items():
        np.testing.assert_allclose(loaded.predict_proba(val_texts[:20])[label], p)


class _RunsCodeOnLoad:
    """A malicious model file: unpickling it calls Path.touch (os.system, in the wild)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_model_file_that_would_run_code_is_refused_unread(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"format": FORMAT_VERSION, "model": _RunsCodeOnLoad(marker)}))
    with pytest.raises(UnsafeModelError, match="pathlib") as caught:
        ModerationModel.load(path)
    assert not marker.exists()  # plain pickle.load would have created it
    assert caught.value.name.endswith("touch") and str(path) in str(caught.value)


def test_a_model_file_that_sets_attributes_on_an_allowed_class_is_refused(tmp_path):
    # A file can BUILD an allowed class itself: pickle's default __setstate__ then runs
    # setattr(ModerationModel, ...), changing every model in this process, even when the file is
    # refused further on. The bytes: push the class, push (None, {attr: True}), BUILD.
    attr = "set_by_a_model_file"
    path = tmp_path / "evil.pkl"
    path.write_bytes(
        pickle.GLOBAL
        + b"moderation.classifier\nModerationModel\n"
        + pickle.dumps((None, {attr: True}), protocol=2)[2:-1]  # without PROTO and STOP
        + pickle.BUILD
        + pickle.STOP
    )
    try:
        with pytest.raises(UnsafeModelError, match="ModerationModel itself"):
            ModerationModel.load(path)
        assert attr not in vars(ModerationModel)
    finally:
        if attr in vars(ModerationModel):  # the unpickler before the fix set it: undo
            delattr(ModerationModel, attr)


class _ObjectsHiddenInBytes:
    """A void dtype whose one field holds Python objects, with flags 0 in its state ("no
    objects"), as numpy's own pickles make a dtype: REDUCE, then BUILD."""

    def __reduce__(self):
        state = (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0)
        return (np.dtype, ("V8", False, True), state)


class _PointersFromTheFile(pickle.Pickler):
    """Pickles a model with one array swapped for an array of that dtype over raw numbers,
    which numpy then reads as object pointers; the file names only allowed globals."""

    def __init__(self, fh, swapped: np.ndarray) -> None:
        super().__init__(fh)
        self.swapped = swapped

    def reducer_override(self, obj):
        if obj is not self.swapped:
            return NotImplemented
        n = len(obj)
        pointers = b"".join((0x4141414141 + 8 * i).to_bytes(8, "little") for i in range(n))
        state = (1, (n,), _ObjectsHiddenInBytes(), False, pointers)
        return (np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), state)


def test_a_model_file_whose_numpy_dtype_hides_pointers_is_refused_not_a_crash(
    trained_model, tmp_path
):
    # the security review's file: the isotonic calibrator's thresholds became such an array,
    # and loading the model (the calibrator interpolates on them) died with SIGSEGV, exit 139
    path = tmp_path / "crafted.pkl"
    thresholds = trained_model.calibrators["offensive"]._model.X_thresholds_
    with path.open("wb") as fh:
        _PointersFromTheFile(fh, thresholds).dump(
            {"format": FORMAT_VERSION, "model": trained_model}
        )
    result = subprocess.run(
        [sys.executable, "-m", "moderation", "classify", "hello there", "--model", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, (result.returncode, result.stderr)  # was -11 (SIGSEGV)
    assert result.stderr.startswith(f"error: {path}: the model file builds a numpy dtype")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_model_file_holding_another_allowed_object_is_refused_naming_it(tmp_path):
    # every class in SAFE_GLOBALS unpickles; only a ModerationModel is a model (classify ended
    # in "AttributeError: 'LabelThresholds' object has no attribute 'thresholds'")
    path = tmp_path / "thresholds.pkl"
    path.write_bytes(
        pickle.dumps({"format": FORMAT_VERSION, "model": LabelThresholds("hate", 0.9, 0.5)})
    )
    with pytest.raises(NotTrainedError, match="holds a LabelThresholds under 'model', not a mod"):
        ModerationModel.load(path)
    path.write_bytes(pickle.dumps({"format": FORMAT_VERSION}))
    with pytest.raises(NotTrainedError, match=r"thresholds\.pkl holds a NoneType under 'model'"):
        ModerationModel.load(path)


def test_unfitted_and_bad_targets(small_config):
    with pytest.raises(NotTrainedError):
        ModerationModel(small_config).predict_proba(["x"])
    with pytest.raises(ConfigError, match="3 values for 2 texts"):
        ModerationModel(small_config).fit(["a", "b"], {"hate": np.zeros(3)}, ["a"], {})


def test_two_saves_to_one_path_at_once_both_finish(trained_model, tmp_path, monkeypatch):
    import moderation.classifier as classifier

    path, real_dump = tmp_path / "m.pkl", pickle.dump

    def dump_while_another_save_runs(obj, fh, *args, **kwargs):
        # another process saves to the same path while this one is writing (deterministically)
        monkeypatch.setattr(classifier.pickle, "dump", real_dump)
        trained_model.save(path)
        real_dump(obj, fh, *args, **kwargs)

    monkeypatch.setattr(classifier.pickle, "dump", dump_while_another_save_runs)
    trained_model.save(path)  # with one shared .tmp name: FileNotFoundError at the rename
    assert ModerationModel.load(path).thresholds == trained_model.thresholds
    assert [p.name for p in tmp_path.iterdir()] == ["m.pkl"]


def test_a_failed_save_keeps_the_previous_file_and_leaves_no_temporary_one(
    trained_model, tmp_path, monkeypatch
):
    import moderation.classifier as classifier

    path = tmp_path / "m.pkl"
    trained_model.save(path)
    before = path.read_bytes()

    def dump_then_fail(obj, fh, *args, **kwargs):
        fh.write(b"part of a model")
        raise OSError("No space left on device")

    monkeypatch.setattr(classifier.pickle, "dump", dump_then_fail)
    with pytest.raises(ModerationError, match=r"cannot save the model to .*No space left"):
        trained_model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pkl"]


@pytest.mark.parametrize("texts", ["you stupid idiot", b"you stupid idiot", None, 42])
@pytest.mark.parametrize("method", ["predict_proba", "raw_scores"])
def test_one_text_is_not_a_batch(trained_model, method, texts):
    # found by a review: a str was scored one character at a time, one score per letter
    with pytest.raises(InvalidTextError, match=f"ModerationModel.{method} takes a sequence"):
        getattr(trained_model, method)(texts)


@pytest.mark.parametrize("method", ["predict_proba", "raw_scores"])
def test_no_texts_give_an_empty_array_per_label(trained_model, method):
    # found by a review: scikit-learn's "Found array with 0 sample(s)" ValueError escaped
    for texts in ([], (), iter([])):
        scores = getattr(trained_model, method)(texts)
        assert set(scores) == set(trained_model.labels)
        assert all(v.shape == (0,) for v in scores.values())


@pytest.mark.parametrize("where", ["a folder", "under a file"])
def test_a_path_save_cannot_write_is_a_moderation_error_naming_it(trained_model, tmp_path, where):
    # found by a review: a raw IsADirectoryError / FileExistsError, after the whole fit
    (tmp_path / "plain").write_text("a file, not a folder")
    path = tmp_path / "model.pkl" if where == "a folder" else tmp_path / "plain" / "model.pkl"
    if where == "a folder":
        path.mkdir()
    reason = "it is a directory" if where == "a folder" else f"{tmp_path / 'plain'} is a file"
    with pytest.raises(ModerationError, match=re.escape(f"{path}: {reason}")):
        trained_model.save(path)
    with pytest.raises(ModerationError, match=re.escape(reason)):
        check_model_path(path)  # what `python -m moderation train` checks before the fit


def test_a_folder_no_file_can_be_written_in_is_refused_by_writing_a_probe(tmp_path):
    # found by a review: check_model_path only created the folder, so an existing one that
    # refuses new files (/sys, even to root) passed and the save failed after the fit
    if not Path("/sys/kernel").is_dir():
        pytest.skip("needs Linux's /sys")
    with pytest.raises(ModerationError, match=r"no file can be written in /sys/kernel \("):
        check_model_path("/sys/kernel/model.pkl")
    path = tmp_path / "new" / "model.pkl"
    assert check_model_path(path) == path
    assert list(path.parent.iterdir()) == []  # the probe is gone and nothing else was written
