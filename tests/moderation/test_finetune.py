"""Fine-tuning MiniLM and stacking it with the TF-IDF heads.

The cheap checks (targets, cache key, batching, weight choice, the stacked model's surface with a
stand-in transformer that has a known answer) run on synthetic data; the fine-tuning test loads the
real packaged MiniLM and trains it for a few steps on the marker corpus (marked slow).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace

import numpy as np
import pytest

from moderation.classifier import ModerationModel
from moderation.errors import ConfigError
from moderation.finetune import (
    CachedPredictions,
    FineTunedClassifier,
    FineTunedEnsemble,
    FineTuneSettings,
    _length_buckets,
    fine_tune_cached,
    training_key,
    uncached,
)
from moderation.labels import LabelledData
from moderation.pipeline import Moderator
from moderation.policy import choose_thresholds
from moderation.stacking import StackedModel, finetune_scores, soft_three_class, stack_weight

from .conftest import make_corpus


def _soft3(y3: np.ndarray) -> np.ndarray:
    return np.eye(3)[y3]


def test_soft_three_class_rows_are_vote_distributions():
    soft = {
        "hate": np.array([0.0, 1 / 3, 2 / 3, 0.0]),
        "offensive": np.array([0.0, 1.0, 1.0, 2 / 3]),
    }
    data = LabelledData(["a"] * 4, np.zeros(4, int), {}, soft, np.zeros(4, bool))
    s3 = soft_three_class(data)
    np.testing.assert_allclose(s3.sum(axis=1), 1.0)
    np.testing.assert_allclose(s3[1], [1 / 3, 2 / 3, 0.0])
    np.testing.assert_allclose(s3[3], [0.0, 2 / 3, 1 / 3])
    back = finetune_scores(s3)  # and the multi-label view comes back out
    np.testing.assert_allclose(back["hate"], soft["hate"])
    np.testing.assert_allclose(back["offensive"], soft["offensive"])


def test_training_key_changes_with_every_input():
    texts, _, y3 = make_corpus(20, seed=0)
    s3, settings = _soft3(y3), FineTuneSettings()
    key = training_key("models/minilm", texts, s3, settings)
    assert key == training_key("other/dir/minilm", texts, s3, settings)  # model name, not path
    assert key != training_key("models/other", texts, s3, settings)
    assert key != training_key("models/minilm", [*texts[:-1], "x"], s3, settings)
    assert key != training_key("models/minilm", texts, s3[::-1], settings)
    assert key != training_key("models/minilm", texts, s3, FineTuneSettings(seed=1))
    assert key != training_key("models/minilm", texts, s3, FineTuneSettings(epochs=2))
    weighted = FineTuneSettings(class_weights=(3.0, 1.0, 1.0))
    assert key != training_key("models/minilm", texts, s3, weighted)
    # threads change the speed, not the model: a 2-thread fine-tune serves a 1-thread run
    assert key == training_key("models/minilm", texts, s3, FineTuneSettings(threads=2))
    assert key == training_key("models/minilm", texts, s3, FineTuneSettings(train_threads=2))


def test_a_setting_added_later_keeps_old_keys_at_its_default():
    texts, _, y3 = make_corpus(20, seed=0)
    s3 = _soft3(y3)
    # the key as it was computed before ``pooling`` (and ``train_threads``) existed
    digest = hashlib.sha256(b"minilm")
    for text in texts:
        digest.update(text.encode("utf-8") + b"\x00")
    digest.update(np.ascontiguousarray(s3, dtype=np.float64).tobytes())
    fields = asdict(FineTuneSettings())
    fields = {k: v for k, v in fields.items() if k not in ("threads", "pooling", "train_threads")}
    digest.update(json.dumps(fields, sort_keys=True).encode())
    assert training_key("models/minilm", texts, s3, FineTuneSettings()) == digest.hexdigest()[:24]
    weighted = FineTuneSettings(pooling="weighted-mean")
    assert training_key("models/minilm", texts, s3, weighted) != digest.hexdigest()[:24]
    with pytest.raises(ConfigError, match="unknown pooling 'max'"):
        FineTuneSettings(pooling="max")


@pytest.mark.parametrize("threads", [{"threads": 0}, {"train_threads": 0}])
def test_thread_counts_must_be_positive(threads):
    with pytest.raises(ConfigError, match="thread counts must be >= 1"):
        FineTuneSettings(**threads)


@pytest.mark.parametrize("weights", [(1.0, 1.0), (3.0, 0.0, 1.0), (3.0, -1.0, 1.0)])
def test_class_weights_must_be_three_positive_numbers(weights):
    with pytest.raises(ConfigError, match="class_weights"):
        FineTuneSettings(class_weights=weights)


def test_length_buckets_cover_every_item_once_in_batches_of_similar_length():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=1000)
    batches = _length_buckets(lengths, 32, np.random.default_rng(1))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 0.5 * np.mean([np.ptp(lengths[rng.permutation(1000)[:32]]) for _ in range(20)])


def test_stack_weight_follows_the_better_model():
    rng = np.random.default_rng(0)
    y3 = rng.choice([0, 1, 2], size=600, p=[0.2, 0.5, 0.3])
    y = {"hate": (y3 == 0).astype(int), "offensive": (y3 <= 1).astype(int)}
    perfect = {k: np.where(v == 1, 0.9, 0.1) for k, v in y.items()}
    noise = {k: rng.random(600) for k in y}
    # the smallest weight that reaches the best validation F1 (here a perfect 1.0) wins
    assert stack_weight(noise, perfect, y, y3) > 0.5
    assert stack_weight(perfect, noise, y, y3) < 0.5
    assert stack_weight(perfect, perfect, y, y3) == 0.0


class _Oracle:
    """A stand-in transformer that knows the marker words (a known answer, no network)."""

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        hate = np.array([0.9 if "zorg" in t else 0.02 for t in texts])
        off = np.array([0.9 if "blarg" in t else 0.05 for t in texts]) - hate
        return np.stack([hate, np.clip(off, 0, 1), 1 - hate - np.clip(off, 0, 1)], axis=1)


def test_stacked_model_serves_through_the_moderator(small_config):
    texts, labels, _ = make_corpus(300, seed=1)
    val_texts, val_labels, val_y3 = make_corpus(600, seed=2)
    base = ModerationModel(small_config).fit(
        texts, {k: v.astype(float) for k, v in labels.items()}, val_texts, val_labels
    )
    stacked = StackedModel(base, _Oracle()).fit(val_texts, val_labels, val_y3)
    assert set(stacked.weights) == {"hate", "offensive"}
    thresholds = choose_thresholds(stacked.predict_proba(val_texts), val_labels, small_config)
    moderator = Moderator(stacked, thresholds)
    assert not moderator.scorer.compiled  # the encoder path: no compiled TF-IDF scorer
    hateful, benign = moderator.moderate_batch(["zorg blarg park walk", "sunny day coffee"])
    assert hateful.path != "allow" and hateful.label == "hate"
    assert benign.path == "allow"
    assert moderator.moderate("zorg blarg park walk").label == "hate"  # sync falls back, works
    only = StackedModel(base, _Oracle()).fit(val_texts, val_labels, val_y3, weight=1.0)
    assert only.weights == {"hate": 1.0, "offensive": 1.0}


class _Fixed:
    """A stand-in member that returns the same class probabilities for every text."""

    def __init__(self, row: list[float]) -> None:
        self.row = np.array(row)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.tile(self.row, (len(texts), 1))


def test_ensemble_averages_its_members_probabilities(tmp_path):
    ensemble = FineTunedEnsemble([_Fixed([0.6, 0.3, 0.1]), _Fixed([0.2, 0.3, 0.5])])
    np.testing.assert_allclose(ensemble.predict_proba(["a", "b"]), [[0.4, 0.3, 0.3]] * 2)
    with pytest.raises(ConfigError, match="at least one member"):
        FineTunedEnsemble([])
    # the serving copy drops every member's prediction cache, nothing else
    inner = _Fixed([1.0, 0.0, 0.0])
    cached = FineTunedEnsemble([CachedPredictions(inner, tmp_path), _Fixed([0.0, 1.0, 0.0])])
    served = uncached(cached)
    assert served.members[0] is inner and served.members[1] is cached.members[1]
    assert uncached(CachedPredictions(inner, tmp_path)) is inner


def test_stacked_ensemble_serves_without_the_prediction_cache(small_config, tmp_path):
    texts, labels, _ = make_corpus(300, seed=1)
    val_texts, val_labels, val_y3 = make_corpus(600, seed=2)
    base = ModerationModel(small_config).fit(
        texts, {k: v.astype(float) for k, v in labels.items()}, val_texts, val_labels
    )
    ensemble = FineTunedEnsemble([CachedPredictions(_Oracle(), tmp_path), _Oracle()])
    stacked = StackedModel(base, ensemble).fit(val_texts, val_labels, val_y3)
    served = stacked.serving()
    assert not any(isinstance(m, CachedPredictions) for m in served.transformer.members)
    for label, p in stacked.predict_proba(val_texts[:50]).items():
        np.testing.assert_allclose(served.predict_proba(val_texts[:50])[label], p)


@pytest.mark.slow
def test_fine_tuning_learns_caches_and_round_trips(tmp_path, monkeypatch):
    from moderation.features import default_model_path

    texts, _, y3 = make_corpus(32, seed=3)
    settings = FineTuneSettings(epochs=3, batch_size=16, lr=2e-4)
    model = fine_tune_cached(default_model_path(), texts, _soft3(y3), settings, tmp_path)
    losses = [h["train_loss"] for h in model.history]
    assert losses[-1] < losses[0]  # it learns the marker words
    probs = model.predict_proba(texts)
    assert probs.shape == (32, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)

    def no_training(*args, **kwargs):
        raise AssertionError("a cached model must not be retrained")

    monkeypatch.setattr(FineTunedClassifier, "fit", no_training)
    two_threads = replace(settings, threads=2)  # same key: threads change speed, not the model
    again = fine_tune_cached(default_model_path(), texts, _soft3(y3), two_threads, tmp_path)
    np.testing.assert_allclose(again.predict_proba(texts), probs, atol=1e-6)
    assert again.history == model.history
    assert (again.settings.threads, again.trained_threads) == (2, 1)  # predicts with the caller's

    cached = CachedPredictions(again, tmp_path)
    first = cached.predict_proba(texts[:5])
    assert len(list(tmp_path.glob("probs-*.npy"))) == 1
    np.testing.assert_array_equal(cached.predict_proba(texts[:5]), first)


@pytest.mark.slow
def test_train_threads_set_the_threads_of_training_alone(tmp_path, monkeypatch):
    import torch

    from moderation.features import default_model_path

    texts, _, y3 = make_corpus(16, seed=3)
    calls: list[int] = []
    set_num_threads = torch.set_num_threads

    def recording(n: int) -> None:
        calls.append(n)
        set_num_threads(n)

    monkeypatch.setattr(torch, "set_num_threads", recording)
    before = torch.get_num_threads()
    recipe = FineTuneSettings(batch_size=16, threads=1, train_threads=2)
    model = fine_tune_cached(default_model_path(), texts, _soft3(y3), recipe, tmp_path)
    assert calls == [2, before]  # fit: the recipe's threads, then the caller's back
    assert (model.trained_threads, model.settings.threads) == (2, 1)
    calls.clear()
    model.predict_proba(texts[:3])
    assert calls == [1, before]  # predictions use ``threads``
    assert FineTunedClassifier.load(model.directory).trained_threads == 2


def test_saving_over_a_saved_fine_tune_replaces_it_and_leaves_no_temporary_folder(tmp_path):
    from moderation.features import default_model_path

    model = FineTunedClassifier(default_model_path(), FineTuneSettings())
    directory = tmp_path / "finetuned-x"
    (tmp_path / "finetuned-x.99999999.0123456789ab.tmp").mkdir()  # a killed writer's leftover
    model.history = [{"epoch": 1, "train_loss": 1.0}]
    model.save(directory)
    model.history = [{"epoch": 1, "train_loss": 2.0}]
    model.save(directory)
    assert FineTunedClassifier.load(directory).history == model.history
    assert [p.name for p in tmp_path.iterdir()] == ["finetuned-x"]


@pytest.mark.parametrize("failure", ["another writer's folder", "a refused rename"])
def test_a_save_that_cannot_rename_into_place_keeps_what_was_there(tmp_path, monkeypatch, failure):
    from pathlib import Path

    from moderation.features import default_model_path

    model = FineTunedClassifier(default_model_path(), FineTuneSettings())
    directory = tmp_path / "finetuned-x"
    model.history = [{"epoch": 1, "train_loss": 1.0}]
    model.save(directory)
    real_rename = Path.rename

    def rename(self, target):
        if self.name.endswith(".tmp") and Path(target) == directory:  # the save's last step
            if failure == "a refused rename":
                raise PermissionError(13, "refused", str(target))
            directory.mkdir()  # another process got there first
            (directory / "meta.json").write_text("{}")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    model.history = [{"epoch": 1, "train_loss": 2.0}]
    with pytest.raises(OSError):
        model.save(directory)
    monkeypatch.undo()
    if failure == "a refused rename":  # the place was free: the previous model is back
        assert FineTunedClassifier.load(directory).history == [{"epoch": 1, "train_loss": 1.0}]
    else:  # the other writer's folder stays
        assert (directory / "meta.json").read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["finetuned-x"]


def test_a_fine_tune_another_process_saved_meanwhile_is_kept(tmp_path, monkeypatch):
    """Two runs sharing a cache can train the same key at once; the one that finishes second
    keeps the first one's copy instead of replacing it (or failing) at the end of its training.
    The other copy lands while this one trains: after any check for it, so only the save's
    refusal to replace a folder can notice it."""
    from moderation.features import default_model_path

    texts, _, y3 = make_corpus(16, seed=5)
    settings = FineTuneSettings(batch_size=16)
    key = training_key(default_model_path(), texts, _soft3(y3), settings)
    directory = tmp_path / f"finetuned-{key}"
    real_fit = FineTunedClassifier.fit

    def fit_while_another_process_saves(self, *args, **kwargs):
        trained = real_fit(self, *args, **kwargs)
        own = trained.history
        trained.history = [{"epoch": 1, "train_loss": -1.0}]  # marks the other process's copy
        trained.save(directory)
        trained.history = own
        return trained

    monkeypatch.setattr(FineTunedClassifier, "fit", fit_while_another_process_saves)
    model = fine_tune_cached(default_model_path(), texts, _soft3(y3), settings, tmp_path)
    kept = FineTunedClassifier.load(directory)
    assert kept.history == [{"epoch": 1, "train_loss": -1.0}]
    # the caller serves the kept copy, so predictions cached beside its weights are its own
    assert model.history == kept.history and model.directory == directory
    assert [p.name for p in tmp_path.iterdir()] == [directory.name]


@pytest.mark.slow
def test_fine_tuning_is_reproducible_and_class_weights_shift_probability():
    import torch

    from moderation.features import default_model_path

    texts, _, y3 = make_corpus(32, seed=3)

    def trained(weights):
        settings = FineTuneSettings(epochs=2, batch_size=16, lr=2e-4, class_weights=weights)
        return FineTunedClassifier(default_model_path(), settings).fit(texts, _soft3(y3))

    plain = trained(None)
    torch.rand(100)  # other work moves the process's random state: the result must not change
    ones = trained((1.0, 1.0, 1.0))
    assert ones.history == plain.history  # same seed, same model; weights of 1 = unweighted
    hate_heavy = trained((5.0, 1.0, 1.0))
    assert hate_heavy.predict_proba(texts)[:, 0].mean() > plain.predict_proba(texts)[:, 0].mean()


@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["mean", "weighted-mean"])
def test_pooling_ignores_padding(pooling):
    """A tweet scores the same alone and padded beside a longer one (real MiniLM, untrained
    head): padding must get no weight, and weighted-mean counts positions from its first token."""
    from moderation.features import default_model_path

    model = FineTunedClassifier(default_model_path(), FineTuneSettings(pooling=pooling))
    short, long = "sunny day", "a long walk in the park with a friend and a good book"
    alone = model.predict_proba([short], batch_size=1)
    padded = model.predict_proba([short, long], batch_size=2)
    np.testing.assert_allclose(padded[0], alone[0], atol=1e-5)
    if pooling == "weighted-mean":  # and it is not the plain mean
        mean = FineTunedClassifier(default_model_path(), FineTuneSettings())
        mean.head.load_state_dict(model.head.state_dict())
        assert np.abs(mean.predict_proba([long]) - model.predict_proba([long])).max() > 1e-4


def test_a_missing_gguf_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no GGUF file"):
        FineTunedClassifier(str(tmp_path / "absent.gguf"))


@pytest.mark.slow
def test_a_gguf_decoder_joins_the_stack_and_round_trips_as_a_model_directory(
    tmp_path, small_config
):
    """The packaged SmolLM2 GGUF (a 4-bit decoder) fine-tunes through the same code path and is
    averaged with MiniLM by ``train_stacked(extra_models=...)``, with its own settings."""
    from llm_client.local_server import gguf_model_path
    from moderation import eval as ev

    texts, labels, y3 = make_corpus(120, seed=3)
    soft = {k: v.astype(float) for k, v in labels.items()}
    data = LabelledData(texts, y3, labels, soft, np.zeros(len(texts), dtype=bool))
    trained = ev.train(data, 0, small_config)
    settings = FineTuneSettings(batch_size=16, threads=2)
    gguf = str(gguf_model_path())
    decoder = replace(settings, pooling="weighted-mean", seed=7)  # the seed is the split's
    stacked = ev.train_stacked(trained, data, tmp_path, settings, extra_models=((gguf, decoder),))

    minilm, smollm = (m.inner for m in stacked.model.transformer.members)
    assert minilm.encoder.config.model_type == "bert"
    assert smollm.encoder.config.model_type == "llama"
    assert smollm.settings == replace(minilm.settings, pooling="weighted-mean")
    assert stacked.val_probs["hate"].shape == (len(trained.split.val),)
    loaded = FineTunedClassifier.load(smollm.directory)  # an ordinary directory now, not GGUF
    assert loaded.base_model == gguf_model_path().name
    assert loaded.settings.pooling == "weighted-mean"  # saved with the model, used to predict
    np.testing.assert_allclose(
        loaded.predict_proba(texts[:16]), smollm.predict_proba(texts[:16]), atol=1e-5
    )


@pytest.mark.slow
def test_train_stacked_names_one_member_per_seed_and_per_extra_entry(tmp_path, small_config):
    """The batch path's recipe: ``members`` seeds of the base model, then one fine-tune per
    ``extra_models`` entry; a bare entry trains with the caller's settings, a pair with its own
    (seed always the split's). Here MiniLM stands in for SmolLM2, named twice."""
    from moderation import eval as ev
    from moderation.features import default_model_path

    texts, labels, y3 = make_corpus(80, seed=5)
    soft = {k: v.astype(float) for k, v in labels.items()}
    data = LabelledData(texts, y3, labels, soft, np.zeros(len(texts), dtype=bool))
    trained = ev.train(data, 0, small_config)
    settings = FineTuneSettings(seed=3, batch_size=16, threads=2)
    minilm = default_model_path()
    own = FineTuneSettings(seed=99, batch_size=16, threads=2, pooling="weighted-mean")
    stacked = ev.train_stacked(
        trained, data, tmp_path, settings, members=2, extra_models=(minilm, (minilm, own))
    )

    got = [
        (m.inner.settings.seed, m.inner.settings.pooling) for m in stacked.model.transformer.members
    ]
    assert got == [(3, "mean"), (103, "mean"), (3, "mean"), (3, "weighted-mean")]
    # the bare entry is the first member's exact recipe, so the cache serves it: same weights
    first, bare = stacked.model.transformer.members[0], stacked.model.transformer.members[2]
    assert first.directory == bare.directory
    assert len({m.directory for m in stacked.model.transformer.members}) == 3


class _Counting(_Fixed):
    calls = 0

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return super().predict_proba(texts)


def _npy(array, **save) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, **save)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not a numpy file", id="garbage"),
        pytest.param(_npy(np.ones((2, 3)))[:-5], id="truncated"),
        pytest.param(_npy(np.array([{"a": 1}, None]), allow_pickle=True), id="pickled"),
        pytest.param(_npy(np.ones((5, 3))), id="other-rows"),
        pytest.param(_npy(np.ones((2, 7))), id="other-width"),
        pytest.param(_npy(np.array([["x"] * 3] * 2)), id="strings"),
    ],
)
def test_an_unusable_cached_prediction_file_is_recomputed_and_rewritten(tmp_path, content):
    inner = _Counting([0.6, 0.3, 0.1])
    cached = CachedPredictions(inner, tmp_path)
    cached.predict_proba(["a", "b"])
    (path,) = tmp_path.glob("probs-*.npy")
    path.write_bytes(content)
    np.testing.assert_array_equal(cached.predict_proba(["a", "b"]), [[0.6, 0.3, 0.1]] * 2)
    assert inner.calls == 2  # recomputed, not served
    np.testing.assert_array_equal(np.load(path), [[0.6, 0.3, 0.1]] * 2)  # and rewritten
    cached.predict_proba(["a", "b"])
    assert inner.calls == 2  # a healthy file is a hit


def test_the_most_abusive_window_sets_each_label_and_a_lone_window_is_untouched():
    from moderation.finetune import _most_abusive_window

    probs = np.array(
        [
            [0.1, 0.2, 0.7],  # text 0, three windows
            [0.3, 0.1, 0.6],  # its most hateful window
            [0.05, 0.6, 0.35],  # its most offensive window: 0.65
            [0.1, 0.3, 0.6],  # text 1, one window
        ]
    )
    out = _most_abusive_window(probs, np.array([0, 0, 0, 1]), 2)
    np.testing.assert_allclose(out[0], [0.3, 0.35, 0.35])
    np.testing.assert_allclose(finetune_scores(out[:1])["offensive"], [0.65])
    assert out[1].tobytes() == probs[3].tobytes()  # no arithmetic on a text that fits


@pytest.fixture(scope="module")
def narrow():
    """The real MiniLM (untrained, seeded head) reading 16 word pieces at a time."""
    import torch

    from moderation.features import default_model_path

    torch.manual_seed(0)
    return FineTunedClassifier(default_model_path(), FineTuneSettings(max_length=16))


FILLER = "see you at the game tonight with everyone " * 3  # 24 word pieces: past one window


@pytest.mark.slow
def test_text_past_the_encoders_window_is_read(narrow):
    # Found by a review: every fine-tuned member read only the first max_length word pieces,
    # so abuse after ~60 words of filler was not seen at all.
    import copy

    import torch

    def pooled(text):
        with torch.inference_mode():
            return narrow.encoder(**narrow.tokenizer([text], return_tensors="pt"))[0].mean(1)[0]

    # a head with a known answer: p(hate) rises along the direction from the filler to "zorg"
    marker, plain = pooled("zorg blarg zorg"), pooled("see you at the game tonight")
    direction = (marker - plain) / (marker - plain).norm() ** 2 * 8
    detector = copy.copy(narrow)
    detector.head = torch.nn.Linear(len(direction), 3)
    with torch.no_grad():
        detector.head.weight.zero_()
        detector.head.bias.zero_()
        detector.head.weight[0] = direction
        detector.head.bias[0] = -direction @ (marker + plain) / 2
    zorg, sunny = FILLER + "zorg blarg zorg", FILLER + "sunny park day"
    probs = detector.predict_proba([zorg, sunny])
    assert probs[0, 0] > probs[1, 0] + 0.2  # the marker at the end is seen
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    probs = narrow.predict_proba([zorg])

    # the windows: overlapping by half a window's word pieces, together the whole text
    windows = narrow.windows([zorg])
    whole = narrow.tokenizer(zorg, add_special_tokens=False)["input_ids"]
    pieces = [w["input_ids"][1:-1] for w in windows]  # without [CLS] and [SEP]
    assert len(windows) > 1 and all(len(w["input_ids"]) <= 16 for w in windows)
    assert pieces[0] + [t for p in pieces[1:] for t in p[7:]] == whole  # 7 = 14 // 2 shared

    # per label, the text's score is its most abusive window's
    each = np.concatenate([narrow.predict_proba([narrow.tokenizer.decode(p)]) for p in pieces])
    assert probs[0, 0] == pytest.approx(each[:, 0].max(), abs=1e-5)
    assert probs[0, :2].sum() == pytest.approx(each[:, :2].sum(axis=1).max(), abs=1e-5)


@pytest.mark.slow
def test_text_that_fits_one_window_is_scored_as_before_bit_for_bit(narrow):
    import torch

    texts = ["sunny day", "zorg blarg walk in the park", "a friend"]  # each fits 16
    assert len(narrow.windows(texts)) == len(texts) and narrow.scoring(texts) == ""
    assert narrow.windows([]) == [] and narrow.predict_proba([]).shape == (0, 3)
    order = np.argsort([len(narrow.tokenizer(t)["input_ids"]) for t in texts], kind="stable")
    with torch.inference_mode():  # the tokenisation training uses, as predicting used to
        before = torch.softmax(narrow._logits([texts[i] for i in order]), -1).double().numpy()
    np.testing.assert_array_equal(narrow.predict_proba(texts)[order], before)


@pytest.mark.slow
def test_cached_predictions_of_a_windowed_text_are_keyed_by_the_scoring(narrow, tmp_path):
    # Files written before windows existed hold the first window's probabilities: a list with a
    # longer text must not find them; a list where every text fits keeps its key (same scores).
    def old_key(texts):
        digest = hashlib.sha256()
        for text in texts:
            digest.update(text.encode("utf-8", "surrogatepass") + b"\x00")
        return f"probs-{digest.hexdigest()[:24]}.npy"

    cached = CachedPredictions(narrow, tmp_path)
    short, long = ["sunny day", "a friend"], ["sunny day", FILLER + "zorg"]
    cached.predict_proba(short)
    assert [p.name for p in tmp_path.glob("probs-*.npy")] == [old_key(short)]
    stale = np.array([[1.0, 0.0, 0.0]] * 2)
    np.save(tmp_path / old_key(long), stale)  # what the code before windows would have cached
    fresh = cached.predict_proba(long)
    np.testing.assert_array_equal(fresh, narrow.predict_proba(long))
    assert not np.array_equal(fresh, stale)
