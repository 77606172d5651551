"""The model's drift and budget metrics, and the swap that keeps the pipeline state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from detector.features import FeatureConfig
from detector.findings import Finding
from detector.pipeline import Pipeline, PipelineConfig, StepReport
from detector.scoring import (
    DEFAULT_MODEL_DIR,
    CalibrationBounds,
    LearningConfig,
    LiveThreshold,
    load_artifact,
)
from detector.service import ServiceMetrics
from detector.service._model_metrics import psi, training_bins
from detector.service._model_watch import swap_model
from tests.model_versions import model_copy

QUANTILES = {"0.5": 0.5, "0.9": 0.9, "0.99": 0.99, "1": 1.0}
NOW = datetime(2024, 3, 9, 12, 0, tzinfo=UTC)


def report(**values: Any) -> StepReport:
    base: dict[str, Any] = {
        "events_in": 0,
        "duplicates": 0,
        "late_events": 0,
        "windows_closed": 0,
        "principals": 0,
        "watermark": None,
        "findings_by_kind": {},
        "findings_by_severity": {},
    }
    return StepReport(**(base | values))


def finding(finding_id: str, kind: str) -> Finding:
    return Finding(
        finding_id=finding_id,
        kind=kind,
        title="t",
        severity=3.0,
        principal="p",
        principal_arn=None,
        principal_type="IAMUser",
        account_id=None,
        region=None,
        window_start=NOW,
        window_end=NOW,
        first_seen=NOW,
        last_seen=NOW,
        created_at=NOW,
        score=0.0,
    )


def test_psi_is_zero_on_the_training_shape_and_grows_with_a_shift() -> None:
    edges, shares = training_bins(QUANTILES)
    assert shares.tolist() == pytest.approx([0.5, 0.4, 0.09, 0.01, 0.0])
    rng = np.random.default_rng(0)
    same = rng.uniform(0, 1, 100_000)
    shifted = rng.uniform(0.5, 1.2, 100_000)
    assert psi(same, edges, shares) < 0.01
    assert psi(shifted, edges, shares) > 1.0
    assert psi(np.empty(0), edges, shares) == 0.0


def test_findings_per_1000_principal_days_count_new_ids_and_distinct_days() -> None:
    metrics = ServiceMetrics()
    model = metrics.model
    days = frozenset({("alice", 19_000), ("bob", 19_000)})
    model.observe(report(principal_days=days), [finding("a" * 32, "model_anomaly")])
    # the same pairs again (another window the same day) and the same finding updated
    model.observe(report(principal_days=days), [finding("a" * 32, "model_anomaly")])
    model.observe(
        report(principal_days=frozenset({("alice", 19_001), ("carol", 19_001)})),
        [finding("b" * 32, "iam_user_created")],
    )
    assert metrics.value("detector_principal_days_total") == 4
    assert metrics.value("detector_findings_new_total", {"kind": "model_anomaly"}) == 1
    assert metrics.value(
        "detector_findings_per_1000_principal_days", {"kind": "model_anomaly"}
    ) == pytest.approx(250.0)


def test_the_learning_share_and_the_live_quantiles() -> None:
    metrics = ServiceMetrics()
    artifact = load_artifact(DEFAULT_MODEL_DIR)
    metrics.model.loaded(artifact)
    scores = np.linspace(0, 1, 1001)
    metrics.model.observe(
        report(window_scores=scores, principals_learning=3, principals_known=12), []
    )
    assert metrics.value("detector_principals_learning_share") == pytest.approx(0.25)
    assert metrics.value(
        "detector_model_score_quantile", {"quantile": "0.5", "scores": "live"}
    ) == pytest.approx(0.5)
    assert metrics.value("detector_model_info", {"version": artifact.version}) == 1


def test_a_swap_keeps_the_state_and_restarts_only_the_live_threshold(
    trained_model_dir: Path, small_events: pl.DataFrame, tmp_path: Path
) -> None:
    artifact = load_artifact(trained_model_dir)
    # learning off: a cold start reports model findings at once, so their version shows
    config = PipelineConfig(
        FeatureConfig(window=artifact.window), learning=LearningConfig(enabled=False)
    )
    pipeline = Pipeline(artifact, config=config)
    start = small_events.get_column("event_time").min()
    assert isinstance(start, datetime)
    hours = small_events.filter(pl.col("event_time") < start + timedelta(hours=6))
    state, _, _ = pipeline.step(pipeline.initial_state(), hours, NOW)
    _, retrained = model_copy(tmp_path, "retrained", trained_model_dir)

    swapped, kept = swap_model(pipeline, state, retrained)

    assert swapped.artifact.version == retrained.version != pipeline.artifact.version
    assert swapped.detections == pipeline.detections
    assert (kept.features, kept.baseline, kept.detections, kept.aggregation) == (
        state.features,
        state.baseline,
        state.detections,
        state.aggregation,
    )
    bounds = CalibrationBounds.from_manifest(retrained.manifest)
    assert kept.calibration.threshold == LiveThreshold.initial(bounds).threshold
    # the state goes on with the new model as with the old
    later = small_events.filter(
        (pl.col("event_time") >= start + timedelta(hours=6))
        & (pl.col("event_time") < start + timedelta(hours=12))
    )
    _, old_findings, old_report = pipeline.step(state, later, NOW)
    _, new_findings, new_report = swapped.step(kept, later, NOW)
    assert new_report.windows_closed > 0
    # the same weights on the kept baselines score every window as before the swap
    np.testing.assert_array_equal(new_report.window_scores, old_report.window_scores)
    assert [f.finding_id for f in new_findings] == [f.finding_id for f in old_findings]
    assert new_report.principals_known == old_report.principals_known > 0
    # (model findings carry the scoring artifact's version: tests/unit/test_scoring.py)
