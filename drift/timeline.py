"""Play a scenario through the whole loop: serve, log, monitor, label, decide, act.

This is the production loop in miniature, one iteration per window::

    deploy?  -> the scenario may push a model (registry switch; the old model starts shadowing,
                until rollback_watch of its shadow windows have been labelled)
    serve    -> the serving model predicts; every shadow model predicts the same rows
    log      -> predictions go to SQLite with inputs, interval, version and role (a NaN or
                infinite output is left out of the log, with a warning; more than
                max_null_share of them is a null_burst quality finding)
    monitor  -> quality, data drift, prediction drift, CUSUM  (drift.monitor)
    labels   -> the labels of window t - label_delay arrive and are joined in the log
    perform  -> serving and shadow MAE on that labelled window  (drift.performance)
    decide   -> the policy rules  (drift.policy), each decision stored with its evidence
    act      -> rollback / retrain a candidate / promote / discard, via the registry

With ``act=False`` the loop still decides and records, but never changes the serving model: that
is the "monitor without actions" baseline whose error the benchmark compares with.

A workdir belongs to one run. Its registry numbers versions from v0001 and its log keys rows by
window and position, so a second run in the same directory would join its predictions to the first
run's labels and list both runs' decisions. ``run_scenario`` therefore refuses a workdir that
already holds run state (:func:`run_state`); :func:`clear_run_state` deletes exactly those files.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from drift.config import SEED_LIMIT, MonitorConfig, check_seed
from drift.errors import SchemaError, WorkdirError
from drift.features import FEATURES, TARGET, BikeData, check_frame
from drift.model import DemandModel, Prediction, mean_absolute_error
from drift.monitor import Monitor, WindowReport
from drift.performance import PerformanceCheck, PerformanceTracker
from drift.policy import Decision, Evidence, PolicyEngine, ShadowScore
from drift.prediction_log import PredictionLog
from drift.registry import POINTER_TMP_NAME, STAGING_NAME, VERSION_ID, ModelRegistry
from drift.scenarios import Scenario

__all__ = [
    "Models",
    "Step",
    "Timeline",
    "check_workdir",
    "clear_run_state",
    "make_workdir",
    "run_scenario",
    "run_state",
    "train_models",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Models:
    """The models a scenario can deploy, each with its baseline MAE on the 2011 holdout."""

    base: DemandModel
    benign: DemandModel
    bad: DemandModel
    baseline_mae: dict[str, float]


def train_models(data: BikeData, *, seed: int = 0) -> Models:
    """Train the initial model, an equivalent retrain (benign) and a bad one (forgets ``hr``).

    ConfigError if ``seed`` is not a whole number from 0 to 2**32 - 1 (the benign model takes the
    next seed, wrapping round to 0 after the last).
    """
    seed = check_seed(seed)
    base = DemandModel.train(data.train, seed=seed)
    benign = DemandModel.train(data.train, seed=(seed + 1) % SEED_LIMIT)
    bad = DemandModel.train(data.train, features=tuple(f for f in FEATURES if f != "hr"), seed=seed)
    truth = data.holdout[TARGET].to_numpy(float)
    baseline = {
        name: mean_absolute_error(truth, model.predict(data.holdout).value)
        for name, model in (("base", base), ("benign", benign), ("bad", bad))
    }
    return Models(base, benign, bad, baseline)


@dataclass(frozen=True)
class Step:
    """One window of a timeline. ``served_mae`` is the true error of what was served (ground truth
    for evaluation, known to the simulator, not to the monitor). ``decisions`` are what the
    policy decided in this window; they were executed only if the timeline ``acted``."""

    window: int
    label: str
    serving: str
    served_mae: float
    n_rows: int
    report: WindowReport
    performance: PerformanceCheck | None
    decisions: tuple[Decision, ...]


@dataclass(frozen=True)
class Timeline:
    """A played scenario: its steps and whether decisions were executed (``acted``)."""

    scenario: Scenario
    steps: tuple[Step, ...]
    acted: bool
    registry_root: Path
    log_path: Path
    deployments: tuple[tuple[int, str, str], ...] = field(default_factory=tuple)

    def actions(self) -> list[tuple[int, str]]:
        """(window, action) for every model-affecting or quarantine decision executed; an
        observe-only timeline executed none."""
        if not self.acted:
            return []
        return [
            (d.window, d.action)
            for s in self.steps
            for d in s.decisions
            if d.action in ("rollback", "retrain", "promote", "discard", "quarantine")
        ]

    def served_mae(self, start: int = 0) -> float:
        """Row-weighted MAE of the served predictions from window ``start`` on."""
        steps = [s for s in self.steps if s.window >= start]
        rows = sum(s.n_rows for s in steps)
        return sum(s.served_mae * s.n_rows for s in steps) / rows if rows else float("nan")


def run_state(workdir: Path) -> tuple[Path, ...]:
    """The files and version directories a run leaves in ``workdir``; empty if it holds none.

    Only names this package writes are listed (the SQLite log with its WAL files, the registry's
    pointer, lock and event log, its temporary names, and version folders with their
    ``meta.json``), so a user's own file never counts as run state, and ``--fresh`` never
    deletes one.
    """
    log_files = [workdir / f"predictions.sqlite{suffix}" for suffix in ("", "-wal", "-shm")]
    registry = workdir / "registry"
    pointers = [registry / name for name in ("SERVING", "events.jsonl", "registry.lock")]
    versions = registry / "versions"
    ours = [
        *_named(registry, POINTER_TMP_NAME),
        *_named(versions, STAGING_NAME),
        *(p for p in _named(versions, VERSION_ID) if (p / "meta.json").is_file()),
    ]
    return tuple(p for p in (*log_files, *pointers, *ours) if p.exists())


def _named(folder: Path, pattern: re.Pattern) -> list[Path]:
    return (
        sorted(p for p in folder.iterdir() if pattern.fullmatch(p.name)) if folder.is_dir() else []
    )


def check_workdir(
    workdir: Path, remedy: str = "use an empty directory or clear_run_state()"
) -> None:
    """Raise WorkdirError if ``workdir`` is a file or already holds a run's state (see module
    docstring)."""
    if workdir.exists() and not workdir.is_dir():
        raise WorkdirError(f"workdir {workdir} is a file; pass a directory, new or empty", workdir)
    previous = run_state(workdir)
    if previous:
        names = ", ".join(str(p.relative_to(workdir)) for p in previous[:3])
        raise WorkdirError(
            f"workdir {workdir} already holds a run ({names}"
            f"{', ...' if len(previous) > 3 else ''}); {remedy}",
            workdir,
            previous,
        )


def make_workdir(workdir: Path) -> None:
    """Create ``workdir`` (and its parents) unless it exists; WorkdirError if it cannot be.

    The error names the path and why: the file in its way (``workdir`` itself or a parent), or
    the operating system's reason (permission denied, read-only file system).
    """
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in (workdir, *workdir.parents) if p.is_file()), None)
        why = f"{blocker} is a file" if blocker else exc.strerror or str(exc)
        raise WorkdirError(
            f"workdir {workdir} cannot be created: {why}; pass a directory, new or empty", workdir
        ) from exc


def clear_run_state(workdir: Path) -> tuple[Path, ...]:
    """Delete what :func:`run_state` lists (and the registry folders if that empties them)."""
    removed = run_state(workdir)
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    for folder in (workdir / "registry" / "versions", workdir / "registry"):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    if removed:
        log.info("deleted the previous run's state in %s (%d entries)", workdir, len(removed))
    return removed


def run_scenario(
    scenario: Scenario,
    models: Models,
    workdir: Path,
    *,
    config: MonitorConfig | None = None,
    act: bool = True,
    seed: int = 0,
) -> Timeline:
    """Play ``scenario`` window by window (see module docstring); state lives under ``workdir``.

    Raises WorkdirError if ``workdir`` already holds a run's state (see module docstring) or
    cannot be created, and ConfigError, before anything is created, if ``seed`` is not a whole
    number from 0 to 2**32 - 1 (a retrain subsamples with it, many windows in).
    """
    config = config or MonitorConfig()
    seed = check_seed(seed)
    check_workdir(workdir)
    make_workdir(workdir)
    registry = ModelRegistry(workdir / "registry")
    pred_log = PredictionLog(workdir / "predictions.sqlite")
    by_kind = {"base": models.base, "benign": models.benign, "bad": models.bad}
    baselines: dict[str, float] = {}
    first = registry.register(
        models.base, {"kind": "base", "baseline_mae": models.baseline_mae["base"]}
    )
    baselines[first] = models.baseline_mae["base"]
    registry.activate(first, reason="initial deployment")
    tracker = PerformanceTracker(baselines[first], config)
    accepted = [first]  # the model whose predictions define "normal" for prediction drift
    monitor = Monitor(config)
    engine = PolicyEngine(config)
    shadows: dict[str, str] = {}
    deployed_at: int | None = None
    served_by: dict[int, str] = {}
    shadows_at: dict[int, dict[str, str]] = {}
    keys_of: dict[int, list[str]] = {}
    labels_of: dict[int, np.ndarray] = {}
    quality_ok: dict[int, bool] = {}
    ref_preds: dict[tuple[int, str], Prediction] = {}
    deployments: list[tuple[int, str, str]] = []
    steps: list[Step] = []
    try:
        for w in scenario.windows:
            if w.deploy is not None:
                # The pipeline *claims* the new model matches the current one's offline error; a bad
                # model that passed a buggy validation looks exactly like this.
                claimed = models.baseline_mae["base"]
                version = registry.register(
                    by_kind[w.deploy], {"kind": w.deploy, "claimed_baseline_mae": claimed}
                )
                baselines[version] = claimed
                shadows["previous"] = registry.serving() or first
                registry.activate(version, reason=f"scheduled deployment ({w.deploy} model)")
                tracker.rebaseline(baselines[version])
                deployed_at = w.index
                deployments.append((w.index, version, w.deploy))
            # The previous model shadows until ``rollback_watch`` of its shadow windows have been
            # labelled: labels lag ``label_delay`` windows, so it shadows rollback_watch +
            # label_delay windows. Counted in serving windows alone, a long label delay would end
            # the watch before the rollback rule had ``patience`` scores, and the bad model would
            # stay (and then look like concept drift to the retrain rule).
            watch = config.rollback_watch + config.label_delay
            if deployed_at is not None and w.index - deployed_at >= watch:
                shadows.pop("previous", None)
                deployed_at = None
            serving = registry.serving()
            model = registry.load(serving)
            keys = [f"{w.index}:{i}" for i in range(len(w.features))]
            # A frame no model can read (a repeated column name: which one is the input?) gets no
            # answer from any model, and the monitor reports it as malformed: quarantined, and the
            # run goes on. Text in a column is read as missing by the model (wrong_type finding).
            malformed = _malformed(w.features)
            serve = _no_answer if malformed else DemandModel.predict
            prediction = serve(model, w.features)
            answered = _log_answered(pred_log, w.index, keys, w.features, prediction, serving)
            for role, version in shadows.items():
                answered |= _log_answered(
                    pred_log,
                    w.index,
                    keys,
                    w.features,
                    serve(registry.load(version), w.features),
                    version,
                    role=f"shadow:{role}",
                )
            served_by[w.index], shadows_at[w.index] = serving, dict(shadows)
            # Labels go to the rows some model answered: the log refuses a label for a row it
            # never stored. A NaN-emitting model's error is therefore over the rows it answered.
            keys_of[w.index] = [k for k, ok in zip(keys, answered, strict=True) if ok]
            labels_of[w.index] = w.labels[answered]
            cache_key = (id(w.reference), accepted[-1])
            if cache_key not in ref_preds:
                ref_preds[cache_key] = registry.load(accepted[-1]).predict(w.reference)
            if malformed:
                report = monitor.malformed(w.index, len(w.features), malformed)
            else:
                report = monitor.observe(
                    w.index,
                    w.reference,
                    w.features,
                    predictions=(ref_preds[cache_key].value, prediction.value),
                    uncertainty=(ref_preds[cache_key].uncertainty, prediction.uncertainty),
                )
            quality_ok[w.index] = report.quality.ok

            performance, scores, labelled = None, {}, w.index - config.label_delay
            if labelled in keys_of:
                pred_log.log_labels(keys_of[labelled], labels_of[labelled])
                if served_by[labelled] == serving:  # evidence about the model serving now
                    rows = pred_log.labelled([labelled], serving)
                    if len(rows.label):  # none if it answered no row there (all NaN, say)
                        performance = tracker.update(
                            labelled,
                            serving,
                            mean_absolute_error(rows.label, rows.prediction),
                            len(rows.label),
                        )
                    for role, version in shadows_at[labelled].items():
                        if shadows.get(role) == version:
                            shadow_rows = pred_log.labelled([labelled], version)
                            if len(shadow_rows.label):
                                scores[role] = ShadowScore(
                                    version,
                                    mean_absolute_error(shadow_rows.label, shadow_rows.prediction),
                                )
            drifted = tuple(c.column for c in report.drift.ranked() if c.drifted)
            evidence = Evidence(
                window=w.index,
                quality_findings=tuple(f"{f.column}: {f.detail}" for f in report.quality.findings),
                labelled_window_quality_ok=quality_ok.get(labelled, True),
                performance=performance,
                shadows=scores,
                pending_candidate=shadows.get("candidate") if "candidate" not in scores else None,
                data_drift=report.drift.dataset_drift or report.alarms["cusum"],
                drifted_features=drifted,
                prediction_drift=report.alarms["prediction"] or report.alarms["uncertainty"],
            )
            decisions = engine.decide(evidence)
            for decision in decisions:
                pred_log.log_decision(
                    w.index,
                    decision.rule,
                    decision.action if act else f"recommend:{decision.action}",
                    list(decision.reasons),
                    decision.evidence,
                )
                if act:
                    _execute(
                        decision,
                        registry,
                        pred_log,
                        tracker,
                        shadows,
                        baselines,
                        served_by,
                        quality_ok,
                        config,
                        seed,
                    )
                    if decision.action == "rollback":
                        deployed_at = None
                    if decision.action in ("rollback", "promote"):
                        accepted.append(registry.serving())
            steps.append(
                Step(
                    w.index,
                    w.label,
                    serving,
                    mean_absolute_error(w.labels, prediction.value),
                    len(w.labels),
                    report,
                    performance,
                    tuple(decisions),
                )
            )
    finally:
        pred_log.close()
    return Timeline(
        scenario,
        tuple(steps),
        act,
        registry.root,
        workdir / "predictions.sqlite",
        tuple(deployments),
    )


def _malformed(features: pd.DataFrame) -> SchemaError | None:
    """The SchemaError of a window frame no model can read (see :func:`check_frame`), or None."""
    try:
        check_frame(features, name="window")
    except SchemaError as exc:
        return exc
    return None


def _no_answer(model: DemandModel, features: pd.DataFrame) -> Prediction:
    """What a model answers to a malformed frame: nothing (NaN) for every row, shape (n,)."""
    nothing = np.full(len(features), np.nan)
    return Prediction(nothing, nothing, nothing)


def _log_answered(
    pred_log: PredictionLog,
    window: int,
    keys: list[str],
    features: pd.DataFrame,
    prediction: Prediction,
    version: str,
    *,
    role: str = "serving",
) -> np.ndarray:
    """Log the rows ``version`` answered with finite numbers; return that mask, shape (n,).

    A NaN or infinite output is not an answer the log can store (SQLite turns NaN into NULL). The
    monitor still sees every output and reports a burst of them as a ``null_burst`` quality
    finding, which quarantines the window; the run goes on.
    """
    answered = prediction.finite_rows
    if not answered.all():
        log.warning(
            "%s (%s) gave %d non-finite predictions in window %d; not logged",
            version,
            role,
            int((~answered).sum()),
            window,
        )
        keys = [k for k, ok in zip(keys, answered, strict=True) if ok]
        features = features[answered]
        prediction = Prediction(
            *(a[answered] for a in (prediction.value, prediction.low, prediction.high))
        )
    pred_log.log_predictions(window, keys, features, prediction, model_version=version, role=role)
    return answered


def _execute(
    decision: Decision,
    registry: ModelRegistry,
    pred_log: PredictionLog,
    tracker: PerformanceTracker,
    shadows: dict[str, str],
    baselines: dict[str, float],
    served_by: dict[int, str],
    quality_ok: dict[int, bool],
    config: MonitorConfig,
    seed: int,
) -> None:
    """Carry out one decision against the registry (the only place the serving model changes)."""
    reason = "; ".join(decision.reasons)
    if decision.action == "rollback":
        switch = registry.rollback(reason=reason)
        shadows.pop("previous", None)
        tracker.rebaseline(baselines[switch.to_version])
    elif decision.action == "retrain":
        labelled = decision.evidence["labelled_window"]
        windows = [
            w
            for w in range(labelled - config.retrain_windows + 1, labelled + 1)
            if quality_ok.get(w, False) and w in served_by
        ]
        frames = []
        for w in windows:
            rows = pred_log.labelled([w], served_by[w], with_features=True)
            frames.append(rows.features.assign(**{TARGET: rows.label}))
        train = pd.concat(frames, ignore_index=True)
        if len(train) > config.max_retrain_rows:
            train = train.sample(config.max_retrain_rows, random_state=seed)
        candidate = DemandModel.train(train, seed=seed)
        version = registry.register(
            candidate, {"kind": "retrained", "trained_on_windows": windows, "rows": len(train)}
        )
        shadows["candidate"] = version
        log.info("retrained candidate %s on windows %s (%d rows)", version, windows, len(train))
    elif decision.action == "promote":
        version = decision.evidence["candidate"]
        registry.activate(version, reason=reason)
        shadows.pop("candidate", None)
        shadows.pop("previous", None)
        baselines[version] = float(decision.evidence["candidate_mae"])
        tracker.rebaseline(baselines[version])
    elif decision.action == "discard":
        shadows.pop("candidate", None)
