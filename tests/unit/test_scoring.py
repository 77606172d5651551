"""Scoring: the estimator contract, calibration, normalisation, own baselines, artifacts."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import skops.io as sio
from sklearn.exceptions import NotFittedError

from detector.errors import ModelError
from detector.findings import finding_to_json
from detector.scoring import (
    MODEL_KIND,
    OwnBaseline,
    PeerBaseline,
    ScoringState,
    WindowAnomalyModel,
    calibrate_threshold,
    fit_knots,
    fit_peer_baseline,
    load_artifact,
    normalise,
    score_and_update,
    score_windows,
    severity_of,
)
from detector.scoring._model import transform

RNG = np.random.default_rng(5)
NAMES = ("a_count_by_principal_5m", "b_count_by_principal_5m", "c_share_by_principal_5m")


def normal_data(n: int = 2000) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.abs(RNG.normal([10.0, 3.0, 0.2], [2.0, 1.0, 0.05], size=(n, 3)))


def test_higher_scores_are_more_anomalous_and_fitting_is_deterministic() -> None:
    x = normal_data()
    model = WindowAnomalyModel(n_estimators=50, random_state=1).fit(x, feature_names=NAMES)
    again = WindowAnomalyModel(n_estimators=50, random_state=1).fit(x, feature_names=NAMES)
    odd = np.array([[200.0, 40.0, 0.9]])
    assert model.anomaly_score(odd)[0] > np.quantile(model.anomaly_score(x), 0.999)
    np.testing.assert_array_equal(model.anomaly_score(x), again.anomaly_score(x))
    assert list(model.feature_names_in_) == list(NAMES)


@pytest.mark.parametrize("max_features", [1.0, 0.67])
def test_scores_equal_scikit_learns_own_score_samples(max_features: float) -> None:
    # One score direction: the model's score is scikit-learn's own, negated, with and without
    # per-tree feature subsets, for any row count.
    x = normal_data()
    model = WindowAnomalyModel(n_estimators=40, max_features=max_features, random_state=3)
    model.fit(x, feature_names=NAMES)
    probe = np.vstack([normal_data(300), [[200.0, 40.0, 0.9]], [[0.0, 0.0, 0.0]]])
    for rows in (probe, probe[:1]):
        expected = -model.forest_.score_samples(transform(rows))
        np.testing.assert_array_equal(model.anomaly_score(rows), expected)
    # Non-finite input gives scikit-learn's answer too.
    with_inf = probe[:3].copy()
    with_inf[0, 0] = np.inf
    np.testing.assert_array_equal(
        model.anomaly_score(with_inf), -model.forest_.score_samples(transform(with_inf))
    )


def test_the_estimator_refuses_misuse() -> None:
    with pytest.raises(NotFittedError):
        WindowAnomalyModel().anomaly_score(normal_data(5))
    model = WindowAnomalyModel(n_estimators=10).fit(normal_data(), feature_names=NAMES)
    with pytest.raises(ValueError, match="feature names differ"):
        model.anomaly_score(normal_data(5), feature_names=("x", "y", "z"))
    with pytest.raises(ValueError, match="expects 3"):
        model.anomaly_score(np.zeros((2, 4)))
    assert model.get_params()["n_estimators"] == 10  # scikit-learn's parameter contract


@pytest.mark.parametrize(
    ("budget", "days", "above"),
    [(5.0, 1000, 5), (5.0, 100, 0), (0.0, 1000, 0), (1000.0, 1000, 1000), (2.5, 2000, 5)],
)
def test_the_threshold_lets_the_budget_through(budget: float, days: int, above: int) -> None:
    scores = np.linspace(0.0, 1.0, 1000)
    threshold = calibrate_threshold(scores, days, budget)
    assert int((scores > threshold).sum()) == above


def test_normalised_scores_rise_beyond_the_training_range() -> None:
    train = RNG.gamma(2.0, size=5000)
    knots = fit_knots(train)
    mapped = normalise(
        np.array([np.median(train), train.max(), train.max() * 2, train.max() * 4]), knots
    )
    assert 0.45 < mapped[0] < 0.55
    assert mapped[1] == pytest.approx(1.0)
    assert 1.0 < mapped[2] < mapped[3]
    assert np.all(np.diff(normalise(np.sort(train), knots)) >= 0)


def windows_frame(keys: list[str], starts: list[int], x: np.ndarray[Any, Any]) -> pl.DataFrame:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    return pl.DataFrame(
        {
            "principal_key": keys,
            "principal_type": ["AssumedRole"] * len(keys),
            "window_start": [base + timedelta(minutes=5 * s) for s in starts],
            "late_correction": [False] * len(keys),
            **{name: x[:, j] for j, name in enumerate(NAMES)},
        }
    )


def test_own_baselines_do_not_depend_on_batching_and_survive_a_snapshot() -> None:
    n = 300
    keys = [f"p{i % 7}" for i in range(n)]
    starts = [i // 7 for i in range(n)]
    x = normal_data(n)
    frame = windows_frame(keys, starts, x)
    peers = fit_peer_baseline(x, ["AssumedRole"] * n, NAMES)
    empty = OwnBaseline(NAMES)
    whole, z_whole, _ = score_and_update(empty, frame, x, peers)
    split, parts = empty, []
    for lo, hi in ((0, 41), (41, 200), (200, n)):
        split, z_part, _ = score_and_update(split, frame[lo:hi], x[lo:hi], peers)
        parts.append(z_part)
    np.testing.assert_allclose(np.vstack(parts), z_whole)
    assert whole.snapshot().equals(split.snapshot())
    restored = OwnBaseline.restore(whole.snapshot(), NAMES)
    assert restored.snapshot().equals(whole.snapshot())
    assert empty.stats == {}  # the old value is untouched


def test_a_burst_stands_out_against_the_principals_own_history() -> None:
    n = 400
    x = normal_data(n)
    frame = windows_frame(["app"] * n, list(range(n)), x)
    peers = fit_peer_baseline(x, ["AssumedRole"] * n, NAMES)
    learned, _, _ = score_and_update(OwnBaseline(NAMES), frame, x, peers)
    burst = np.array([[400.0, 3.0, 0.2]])
    _, z, usual = score_and_update(learned, windows_frame(["app"], [n], burst), burst, peers)
    assert z[0, 0] > 5  # the count, far above its own mean
    assert abs(z[0, 1]) < 2  # an ordinary feature stays ordinary
    assert 8 < usual[0, 0] < 12


def test_severity_follows_score_and_signals() -> None:
    assert severity_of(0.99, 0.99, []) == 3.0
    assert severity_of(1.0, 0.99, []) == 6.0
    assert (
        severity_of(1.0, 0.99, ["credentials_off_endpoint_from_new_ip", "off_vpc_endpoint"]) == 8.9
    )
    assert severity_of(0.995, 0.99, ["new_region"]) == 5.0


# --- artifacts: train -> save -> load -> score ------------------------------------------------


def test_a_trained_artifact_loads_and_scores_the_attack_day(
    trained_model_dir: Path, small_trail: Any, small_events: pl.DataFrame
) -> None:
    from detector.features import FeatureConfig, flush, update
    from detector.features import empty_state as empty_features

    artifact = load_artifact(trained_model_dir)
    manifest = artifact.manifest
    assert manifest["training"]["windows_above_threshold"] <= (
        manifest["alert_budget_per_1000_principal_days"]
        * manifest["training"]["principal_days"]
        / 1000
    )
    state, scoring, findings = empty_features(), ScoringState.initial(artifact), []
    now = datetime(2025, 1, 1, tzinfo=UTC)
    for lo in range(0, small_events.height, 10_000):
        state, windows, _ = update(state, small_events.slice(lo, 10_000), FeatureConfig())
        scoring, scored = score_windows(artifact, scoring, windows, created_at=now)
        findings += scored.findings
    _, windows, _ = flush(state, FeatureConfig())
    scoring, scored = score_windows(artifact, scoring, windows, created_at=now)
    findings += scored.findings
    attack_start = small_trail.config.start + timedelta(days=small_trail.config.baseline_days)
    attack = [f for f in findings if f.window_start >= attack_start]
    assert attack, "the model found nothing on the attack day"
    for finding in attack:
        assert finding.kind == MODEL_KIND
        assert finding.model_version == artifact.version
        assert finding.score > artifact.threshold
        assert finding.score > finding.evidence["threshold"] >= round(artifact.threshold, 6)
        assert finding.explanation, "every finding explains itself"
        json.loads(finding_to_json(finding))
    principals = {f.principal for f in attack}
    stolen = next(lb for lb in small_trail.labels if lb.scenario == "stolen_role_credentials")
    role = stolen.principal_arn.split("/")[1]
    assert any(role in p for p in principals)


@pytest.fixture
def model_copy(trained_model_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(trained_model_dir, folder)
    return folder


def test_a_tampered_model_file_is_refused(model_copy: Path) -> None:
    path = model_copy / "model.skops"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="does not match the manifest"):
        load_artifact(model_copy)


def test_a_model_of_another_feature_schema_is_refused(model_copy: Path) -> None:
    manifest = json.loads((model_copy / "manifest.json").read_text())
    manifest["feature_schema_hash"] = "0" * 64
    (model_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="different feature schema"):
        load_artifact(model_copy)


class NotAModel:
    """A type no model file may hold."""


def test_a_model_file_with_untrusted_types_is_refused(model_copy: Path) -> None:
    import hashlib

    path = model_copy / "model.skops"
    sio.dump({"model": NotAModel()}, path)
    manifest = json.loads((model_copy / "manifest.json").read_text())
    manifest["model_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (model_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="untrusted types"):
        load_artifact(model_copy)


def test_a_folder_that_is_not_a_model_says_so(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no manifest\.json"):
        load_artifact(tmp_path)


def test_peer_baselines_round_trip_through_json() -> None:
    x = normal_data(200)
    peers = fit_peer_baseline(x, ["IAMUser"] * 100 + ["AssumedRole"] * 100, NAMES, min_rows=50)
    assert PeerBaseline.from_json(json.loads(json.dumps(peers.to_json()))) == peers
    assert set(peers.median) == {"*", "IAMUser", "AssumedRole"}
