"""Quiet out of the box, sharp after it learns: the learning period, the live threshold, the
behavioural peer groups, and training on a short history (docs/quality.md)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from detector.features import feature_columns
from detector.findings import Finding
from detector.pipeline import Pipeline, PipelineConfig, PipelineState
from detector.scoring import (
    MODEL_KIND,
    CalibrationBounds,
    LearningConfig,
    LiveThreshold,
    assign_group,
    load_artifact,
)
from detector.training import TrainingConfig, fit_model, windows_of

NOW = datetime(2025, 1, 1, tzinfo=UTC)
DAY_MS = 86_400_000


def run(
    pipeline: Pipeline, events: pl.DataFrame, batch: int, state: PipelineState | None = None
) -> tuple[PipelineState, list[Finding], list[Any]]:
    state = state or pipeline.initial_state()
    findings: list[Finding] = []
    reports = []
    for lo in range(0, events.height, batch):
        state, found, report = pipeline.step(state, events.slice(lo, batch), NOW)
        findings += found
        reports.append(report)
    state, found, report = pipeline.flush(state, NOW)
    return state, findings + found, [*reports, report]


@pytest.fixture(scope="module")
def attack_day(small_trail: Any, small_events: pl.DataFrame) -> pl.DataFrame:
    cut = small_trail.config.start + timedelta(days=small_trail.config.baseline_days)
    return small_events.filter(pl.col("event_time") >= cut)


# --- the learning period -----------------------------------------------------------------------


def test_a_cold_start_reports_no_model_finding_while_signatures_fire(
    trained_model_dir: Path, attack_day: pl.DataFrame
) -> None:
    artifact = load_artifact(trained_model_dir)
    learning = Pipeline(artifact)
    _, findings, reports = run(learning, attack_day, 20_000)
    kinds = {f.kind for f in findings}
    assert MODEL_KIND not in kinds, "every principal is new: the model is still learning"
    assert "cloudtrail_logging_stopped" in kinds, "signature detections report from the start"
    assert max(r.principals_learning or 0 for r in reports) > 0
    # The same day with the learning period off: the model speaks (this is what it holds back).
    config = PipelineConfig(learning=LearningConfig(enabled=False))
    _, eager, _ = run(Pipeline(artifact, config=config), attack_day, 20_000)
    assert MODEL_KIND in {f.kind for f in eager}


def test_a_principal_matures_after_enough_days_and_windows_or_age() -> None:
    config = LearningConfig(min_days=2, min_windows=12, max_age=timedelta(days=7))
    day = DAY_MS
    assert not config.mature(first_ms=None, days=0, windows=0, at_ms=0)
    assert not config.mature(first_ms=0, days=1, windows=200, at_ms=day // 2)
    assert not config.mature(first_ms=0, days=2, windows=5, at_ms=2 * day)
    assert config.mature(first_ms=0, days=2, windows=12, at_ms=2 * day)
    assert config.mature(first_ms=0, days=1, windows=1, at_ms=7 * day)  # a weekly job
    assert LearningConfig(enabled=False).mature(first_ms=None, days=0, windows=0, at_ms=0)


# --- the live threshold ------------------------------------------------------------------------


def simulate(
    live: LiveThreshold,
    bounds: CalibrationBounds,
    days: range,
    scores_of: Any,
    principals: int = 200,
    windows_per_day: int = 24,
) -> tuple[LiveThreshold, list[float], int, int]:
    """Window starts in order; each principal one window per start. Returns the state, the
    threshold per day, principal-days with a report and principal-days, over ``days``."""
    keys = [f"p{i}" for i in range(principals)]
    per_day, flagged_days, seen_days = [], 0, 0
    for d in days:
        reported_today: set[str] = set()
        for w in range(windows_per_day):
            at = d * DAY_MS + w * 300_000
            live = live.advance(bounds, at)
            scores = scores_of(d, w, principals)
            flagged = scores > live.threshold
            reported_today.update(k for k, f in zip(keys, flagged, strict=True) if f)
            live = live.learn(bounds, d, scores, keys, flagged, principals if w == 0 else 0)
        per_day.append(live.threshold)
        flagged_days += len(reported_today)
        seen_days += principals
    return live, per_day, flagged_days, seen_days


BOUNDS = CalibrationBounds(start=1.0, low=1.0, high=2.0, budget=5.0)


def shifted(shift: float, seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)

    def scores(day: int, window: int, n: int) -> np.ndarray[Any, Any]:
        # Training-like scores have their top 0.02% of windows above 1.0; these are shifted.
        return rng.exponential(0.03, n) + 0.75 + shift

    return scores


def test_the_live_threshold_converges_to_the_budget_on_shifted_scores() -> None:
    live = LiveThreshold.initial(BOUNDS)
    _, _, flagged_before, days_before = simulate(live, BOUNDS, range(0, 3), shifted(0.2))
    assert 1000 * flagged_before / days_before > 4 * BOUNDS.budget  # the artifact's is too low
    live, per_day, _, _ = simulate(live, BOUNDS, range(0, 30), shifted(0.2))
    _, _, flagged, days = simulate(live, BOUNDS, range(30, 40), shifted(0.2))
    rate = 1000 * flagged / days
    assert BOUNDS.budget / 3 <= rate <= 2 * BOUNDS.budget, (rate, per_day[-5:])
    assert BOUNDS.start < per_day[-1] < BOUNDS.high


def test_the_live_threshold_never_leaves_its_bounds() -> None:
    _, per_day, _, _ = simulate(LiveThreshold.initial(BOUNDS), BOUNDS, range(0, 15), shifted(5.0))
    assert max(per_day) == BOUNDS.high
    _, per_day, _, _ = simulate(LiveThreshold.initial(BOUNDS), BOUNDS, range(0, 15), shifted(-0.5))
    assert min(per_day) == BOUNDS.low


def test_one_principal_reported_all_day_does_not_pull_the_threshold_up() -> None:
    base = shifted(0.0, seed=3)

    def with_attacker(day: int, window: int, n: int) -> np.ndarray[Any, Any]:
        scores = np.minimum(base(day, window, n), 0.99)  # the organisation: all below
        scores[0] = 1.8  # a slow attacker: every window of one principal, far above
        return scores

    _, per_day, flagged, _ = simulate(
        LiveThreshold.initial(BOUNDS), BOUNDS, range(0, 20), with_attacker
    )
    assert max(per_day) == BOUNDS.start
    assert flagged == 20  # reported every day, never taught to look away


def test_the_live_threshold_survives_a_snapshot() -> None:
    live, _, _, _ = simulate(LiveThreshold.initial(BOUNDS), BOUNDS, range(0, 5), shifted(0.2))
    again = LiveThreshold.restore(live.snapshot(), BOUNDS)
    assert again.snapshot() == live.snapshot()
    other = replace(BOUNDS, bins=10)
    assert LiveThreshold.restore(live.snapshot(), other).threshold == other.start


def test_calibration_bounds_come_from_the_manifest_with_defaults() -> None:
    old = CalibrationBounds.from_manifest({"threshold": 0.99})
    assert (old.start, old.low, old.high) == (0.99, 0.99, 2.0)
    new = CalibrationBounds.from_manifest(
        {"threshold": 1.1, "calibration": {"threshold_min": 1.0, "threshold_max": 1.5}}
    )
    assert (new.low, new.high) == (1.0, 1.5)
    with pytest.raises(ValueError, match="threshold_max"):
        CalibrationBounds.from_manifest({"threshold": 2.0, "calibration": {"threshold_max": 1.0}})


# --- peer groups -------------------------------------------------------------------------------

NAMES = feature_columns(timedelta(minutes=5))


def typical(**values: float) -> np.ndarray[Any, Any]:
    mean = np.zeros(len(NAMES))
    for stem, value in values.items():
        mean[[n.split("_by_principal_", 1)[0] for n in NAMES].index(stem)] = np.log1p(value)
    return mean


@pytest.mark.parametrize(
    ("kind", "windows", "days", "mean", "group"),
    [
        (
            "AssumedRole",
            2000,
            7,
            typical(
                calls_count=300,
                services_distinct_count=12,
                event_names_distinct_count=60,
                write_calls_count=0,
            ),
            "scanner",
        ),
        (
            "IAMUser",
            200,
            7,
            typical(calls_count=20, console_logins_count=0.05, write_calls_count=2),
            "person",
        ),
        (
            "AssumedRole",
            70,
            7,
            typical(calls_count=40, write_calls_count=20, services_distinct_count=3),
            "deploy",
        ),
        ("AssumedRole", 70, 7, typical(calls_count=40, kms_decrypt_calls_count=30), "batch"),
        # Same behaviour, but the key names a person (an Identity Center session).
        ("AssumedRole#", 70, 7, typical(calls_count=40, kms_decrypt_calls_count=30), "person"),
        ("AssumedRole", 2000, 7, typical(calls_count=30, sqs_calls_count=20), "workload"),
        ("AssumedRole", 3, 1, typical(calls_count=300), "type:AssumedRole"),
    ],
)
def test_peer_groups_follow_behaviour(
    kind: str, windows: int, days: int, mean: np.ndarray[Any, Any], group: str
) -> None:
    kind, person = kind.rstrip("#"), kind.endswith("#")
    key = "arn:aws:iam::111122223333:role/" + (
        "AWSReservedSSO_Dev_0a1b#ann@example.com" if person else "job"
    )
    assert assign_group(kind, windows, days, mean, NAMES, key) == group


def test_findings_name_the_peer_group(trained_model_dir: Path, small_events: pl.DataFrame) -> None:
    pipeline = Pipeline(load_artifact(trained_model_dir))
    state, findings, _ = run(pipeline, small_events, 25_000)
    model = [f for f in findings if f.kind == MODEL_KIND]
    assert model
    for finding in model:
        named = [e for e in finding.explanation if e.what == "peer_group"]
        assert named
        assert named[0].value == finding.evidence["peer_group"]
    groups = set(state.baseline.groups)
    assert {"workload"} <= groups


# --- state: batch splits and snapshots ----------------------------------------------------------


def test_batch_splits_and_a_restart_change_nothing(
    trained_model_dir: Path, small_trail: Any, small_events: pl.DataFrame
) -> None:
    pipeline = Pipeline(load_artifact(trained_model_dir))
    start = small_trail.config.start + timedelta(days=2)
    events = small_events.filter(pl.col("event_time") >= start)
    whole_state, whole, _ = run(pipeline, events, 60_000)
    half = events.height // 2
    first, found, _ = run_no_flush(pipeline, events.slice(0, half), 7_000)
    restored = pipeline.restore(pipeline.snapshot(first))
    last, rest, _ = run(pipeline, events.slice(half), 13_000, restored)
    split = found + rest

    def latest(findings: list[Finding]) -> dict[str, tuple[float, float]]:
        # The model's findings (what learning and calibration decide). Aggregation re-sends a
        # finding when its severity rises, at moments that depend on the batches; what a reader
        # ends with per id does not. Detections judge a batch against the profile as it stood
        # before it, so theirs may move with the batches (tests/unit/test_detections_properties.py).
        out: dict[str, tuple[float, float]] = {}
        for f in findings:
            if f.kind == MODEL_KIND:
                out[f.finding_id] = (f.score, f.severity)
        return out

    assert latest(split) == latest(whole)
    a, b = pipeline.snapshot(whole_state), pipeline.snapshot(last)
    assert a.meta["calibration"] == b.meta["calibration"]
    for name in ("baseline", "baseline_groups"):
        assert a.frames[name].equals(b.frames[name]), name


def run_no_flush(
    pipeline: Pipeline, events: pl.DataFrame, batch: int
) -> tuple[PipelineState, list[Finding], None]:
    state = pipeline.initial_state()
    findings: list[Finding] = []
    for lo in range(0, events.height, batch):
        state, found, _ = pipeline.step(state, events.slice(lo, batch), NOW)
        findings += found
    return state, findings, None


# --- training on a short history ----------------------------------------------------------------


def test_two_days_train_with_an_adapted_warm_up(
    small_trail: Any, small_events: pl.DataFrame
) -> None:
    two_days = small_events.filter(
        pl.col("event_time") < small_trail.config.start + timedelta(days=2)
    )
    data = windows_of([two_days], TrainingConfig().features)
    config = TrainingConfig(n_estimators=20)
    _, _, manifest, card = fit_model(data, config, "two days")
    assert manifest["training"]["warmup_adapted"]
    assert manifest["training"]["warmup_seconds"] <= 12 * 3600
    assert "shortened" in card


def test_too_little_history_says_how_much_is_needed(small_events: pl.DataFrame) -> None:
    first = small_events.get_column("event_time").min()
    assert isinstance(first, datetime)
    minutes = small_events.filter(pl.col("event_time") < first + timedelta(minutes=30))
    data = windows_of([minutes], TrainingConfig().features)
    with pytest.raises(ValueError, match=r"needs at least 100 windows .* about .* of history"):
        fit_model(data, TrainingConfig(n_estimators=20), "half an hour")
