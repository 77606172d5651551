"""Training: events in time order -> the service's own features -> a verified model folder.

Profiles warm up over the whole period in event-time order exactly as the service's would;
windows of the first ``warmup`` (when every IP, region and API call is still "new") shape the
profiles but are not fitted or calibrated on. The warm-up adapts to a short period: at most a
quarter of it (two days of history get a 12-hour warm-up, not the default two days that would
leave nothing to fit); :func:`effective_warmup` says which, and the manifest records it. The threshold is set to the alert budget on the
remaining windows. Deterministic for a given input and seed; no wall clock is read (the
manifest records the training period, not when training ran).

Imports: numpy, polars, detector.features, detector.scoring.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from detector.features import (
    FeatureConfig,
    empty_state,
    feature_columns,
    feature_dtypes,
    feature_schema_hash,
    flush,
    update,
)
from detector.scoring import (
    DEFAULT_ALERT_BUDGET,
    ModelArtifact,
    ModelSigning,
    OwnBaseline,
    PeerBaseline,
    WindowAnomalyModel,
    calibrate_threshold,
    combine,
    feature_matrix,
    fit_knots,
    fit_peer_baseline,
    library_versions,
    principal_days,
    raw_scores,
    save_artifact,
    signal_weights,
)

__all__ = [
    "DEFAULT_WARMUP",
    "MIN_FITTED_WINDOWS",
    "TrainingConfig",
    "TrainingWindows",
    "effective_warmup",
    "fit_model",
    "train",
    "windows_of",
]

DEFAULT_WARMUP: Final = timedelta(days=2)
WARMUP_SHARE: Final = 0.25  # an adapted warm-up takes at most this share of the period
MIN_FITTED_WINDOWS: Final = 100
SCORE_QUANTILES: Final = (0.5, 0.9, 0.99, 0.999, 1.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingConfig:
    name: str = "default"
    alert_budget: float = DEFAULT_ALERT_BUDGET  # model findings per 1,000 principal-days
    warmup: timedelta = DEFAULT_WARMUP
    # Shorten the warm-up to WARMUP_SHARE of a short period (off: ``warmup`` as given).
    adapt_warmup: bool = True
    seed: int = 0
    n_estimators: int = 200
    max_samples: int = 512
    features: FeatureConfig = field(default_factory=FeatureConfig)


@dataclass(frozen=True, slots=True)
class TrainingWindows:
    """Every closed window of the period, and what went into them."""

    windows: pl.DataFrame
    events: int
    duplicates: int
    late_events: int
    first_event: datetime | None
    last_event: datetime | None


def windows_of(chunks: Iterable[pl.DataFrame], features: FeatureConfig) -> TrainingWindows:
    """Run the feature step over event frames given in (roughly) event-time order."""
    state = empty_state()
    out: list[pl.DataFrame] = []
    events = duplicates = late = 0
    first: datetime | None = None
    last: datetime | None = None
    for chunk in chunks:
        if chunk.height == 0:
            continue
        lo, hi = chunk.get_column("event_time").min(), chunk.get_column("event_time").max()
        assert isinstance(lo, datetime)
        assert isinstance(hi, datetime)
        first = lo if first is None else min(first, lo)
        last = hi if last is None else max(last, hi)
        state, closed, report = update(state, chunk, features)
        out.append(closed)
        events += report.events_in
        duplicates += report.duplicates
        late += report.late_events
    state, closed, report = flush(state, features)
    out.append(closed)
    windows = pl.concat(out, how="vertical").sort(
        "principal_key", "window_start", "late_correction"
    )
    return TrainingWindows(windows, events, duplicates, late, first, last)


def effective_warmup(data: TrainingWindows, config: TrainingConfig) -> timedelta:
    """The warm-up used: ``config.warmup``, or a quarter of a shorter period when adapting."""
    if data.first_event is None or data.last_event is None:
        raise ValueError("no events to train on")
    if not config.adapt_warmup:
        return config.warmup
    span = data.last_event - data.first_event
    return min(config.warmup, span * WARMUP_SHARE)


def _too_short(
    data: TrainingWindows, config: TrainingConfig, warmup: timedelta, fitted: int
) -> str:
    """Why the period is too short, and how much history would do."""
    assert data.first_event is not None
    assert data.last_event is not None
    span = data.last_event - data.first_event
    hours = max(span.total_seconds() / 3600, 1 / 60)
    fitting_hours = (span - warmup).total_seconds() / 3600
    # Principal-windows per hour of history, measured where it counts (after the warm-up).
    rate = fitted / fitting_hours if fitted and fitting_hours > 0 else data.windows.height / hours
    rate = max(rate, 1e-9)
    fitting = timedelta(hours=MIN_FITTED_WINDOWS / rate)
    if config.adapt_warmup:
        # warm-up = share * total and fitting = (1 - share) * total, unless capped at the default
        total = min(fitting / (1 - WARMUP_SHARE), config.warmup + fitting)
    else:
        total = warmup + fitting
    return (
        f"only {fitted} windows after the {_seconds(warmup)} warm-up "
        f"({'adapted to' if config.adapt_warmup else 'set for'} a period of {_seconds(span)}, "
        f"{data.windows.height} windows in all, about {rate:.0f} an hour): "
        f"training needs at least {MIN_FITTED_WINDOWS} windows after the warm-up, "
        f"i.e. about {_round_up(total)} of history at this activity; train on a longer period"
        + ("" if config.adapt_warmup else " or a shorter --warmup-hours")
    )


def _seconds(value: timedelta) -> timedelta:
    return timedelta(seconds=round(value.total_seconds()))


def _round_up(value: timedelta) -> timedelta:
    return timedelta(hours=max(1, -(-int(value.total_seconds()) // 3600)))


def _fitting_mask(data: TrainingWindows, warmup: timedelta) -> pl.Series:
    """Windows fitted and calibrated on: after the warm-up, not late corrections."""
    if data.first_event is None:
        raise ValueError("no events to train on")
    return data.windows.select(
        (pl.col("window_start") >= data.first_event + warmup) & ~pl.col("late_correction")
    ).to_series()


def fit_model(
    data: TrainingWindows, config: TrainingConfig, source: str
) -> tuple[WindowAnomalyModel, PeerBaseline, dict[str, Any], str]:
    """The fitted model, its peer baseline, manifest and card (nothing written)."""
    window = config.features.window
    names = feature_columns(window)
    warmup = effective_warmup(data, config)
    fit = _fitting_mask(data, warmup)
    rows = data.windows.filter(fit)
    if rows.height < MIN_FITTED_WINDOWS:
        raise ValueError(_too_short(data, config, warmup, rows.height))
    x = feature_matrix(rows, names)
    model = WindowAnomalyModel(
        n_estimators=config.n_estimators,
        max_samples=config.max_samples,
        random_state=config.seed,
    ).fit(x, feature_names=names)
    peers = fit_peer_baseline(x, rows.get_column("principal_type").to_list(), names)
    # Own baselines learn over the whole period (warm-up included), as the service's would.
    _, raw = raw_scores(model, peers, OwnBaseline(tuple(names)), data.windows, names)
    mask = fit.to_numpy()
    knots = {"forest": fit_knots(raw.forest[mask]), "deviation": fit_knots(raw.deviation[mask])}
    weights = signal_weights(data.windows, window)
    scores = combine(raw.forest[mask], raw.deviation[mask], weights[mask], knots)
    days = principal_days(rows)
    threshold = calibrate_threshold(scores, days, config.alert_budget)
    types = rows.group_by("principal_type").agg(
        pl.len().alias("windows"), pl.col("principal_key").n_unique().alias("principals")
    )
    quantiles = {f"{q:g}": float(np.quantile(scores, q)) for q in SCORE_QUANTILES}
    above = int((scores > threshold).sum())
    manifest: dict[str, Any] = {
        "name": config.name,
        "feature_names": list(names),
        "feature_dtypes": {k: str(v) for k, v in feature_dtypes(window).items()},
        "feature_schema_hash": feature_schema_hash(window),
        "window_seconds": int(window.total_seconds()),
        "threshold": threshold,
        "score_knots": knots,
        "score_quantiles": quantiles,
        "alert_budget_per_1000_principal_days": config.alert_budget,
        "training": {
            "source": source,
            "since": _iso(data.first_event),
            "until": _iso(data.last_event),
            "warmup_seconds": int(warmup.total_seconds()),
            "warmup_adapted": warmup != config.warmup,
            "events": data.events,
            "duplicate_events": data.duplicates,
            "late_events": data.late_events,
            "principals": rows.get_column("principal_key").n_unique(),
            "windows_fitted": rows.height,
            "principal_days": days,
            "windows_above_threshold": above,
            "by_principal_type": {
                r["principal_type"]: {"windows": r["windows"], "principals": r["principals"]}
                for r in types.sort("principal_type").iter_rows(named=True)
            },
        },
        "params": {
            "seed": config.seed,
            "n_estimators": config.n_estimators,
            "max_samples": config.max_samples,
        },
        "library_versions": library_versions(),
    }
    return model, peers, manifest, model_card(manifest)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def model_card(manifest: dict[str, Any]) -> str:
    t = manifest["training"]
    lines = [
        f"# Model card: `{manifest['name']}`",
        "",
        "An isolation forest over per-principal "
        f"{manifest['window_seconds'] // 60}-minute windows of CloudTrail activity "
        "(`detector.scoring.WindowAnomalyModel`, features from `detector.features`). A window "
        "scoring above the threshold becomes a `model_anomaly` finding; explicit signals and the "
        "features that moved most explain it.",
        "",
        "## Training data",
        "",
        f"- source: `{t['source']}`",
        f"- period: {t['since']} to {t['until']} (first {t['warmup_seconds'] / 3600:g} h are "
        "profile warm-up, not fitted"
        + ("; shortened to a quarter of the short period" if t.get("warmup_adapted") else "")
        + ")",
        f"- {t['events']:,} events ({t['duplicate_events']:,} duplicates dropped, "
        f"{t['late_events']:,} late), {t['principals']:,} principals, "
        f"{t['windows_fitted']:,} windows fitted, {t['principal_days']:,} principal-days",
        "",
        "| principal type | principals | windows |",
        "|---|---|---|",
        *(
            f"| {kind} | {v['principals']:,} | {v['windows']:,} |"
            for kind, v in t["by_principal_type"].items()
        ),
        "",
        "## Scores and threshold",
        "",
        "A window's score is the larger of two views, each mapped through its distribution on "
        "the training windows (0.99 = above 99% of them; above 1.0 = beyond anything seen): the "
        "isolation forest's anomaly score, and the largest rise of one feature above the "
        "principal's own running mean; plus 0.001 per severity point of the explicit signals "
        "present. Higher is more anomalous.",
        "",
        "| quantile | " + " | ".join(manifest["score_quantiles"]) + " |",
        "|---|" + "---|" * len(manifest["score_quantiles"]),
        "| score | " + " | ".join(f"{v:.4f}" for v in manifest["score_quantiles"].values()) + " |",
        "",
        f"- alert budget: {manifest['alert_budget_per_1000_principal_days']:g} model findings per "
        "1,000 principal-days",
        f"- threshold: {manifest['threshold']:.6f} ({t['windows_above_threshold']} training "
        "windows above it)",
        "",
        "## Use and limits",
        "",
        "- Trained on the data above only: profiles and peers reflect that organisation. Retrain "
        "on your own trails (`notebooks/retrain.ipynb` or `detector train`) before relying on it.",
        "- Loading checks the sha256 of every file against `manifest.json`, the feature schema "
        "hash against the running code, and refuses any type outside the trusted list.",
        f"- Reproduce: `detector train <source> --out models/{manifest['name']} --seed "
        f"{manifest['params']['seed']} --alert-budget "
        f"{manifest['alert_budget_per_1000_principal_days']:g}`.",
        "",
        "Library versions: "
        + ", ".join(f"{k} {v}" for k, v in manifest["library_versions"].items()),
        "",
    ]
    return "\n".join(lines)


def train(
    chunks: Iterable[pl.DataFrame],
    folder: Path,
    config: TrainingConfig,
    source: str,
    signing: ModelSigning | None = None,
) -> ModelArtifact:
    """Features over the period, fit, calibrate, and write the verified folder (signed when
    ``signing`` holds a key)."""
    data = windows_of(chunks, config.features)
    model, peers, manifest, card = fit_model(data, config, source)
    return save_artifact(folder, model, peers, manifest, card, signing)
