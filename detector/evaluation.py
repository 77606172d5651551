"""Quality report: how well the pipeline finds labelled attacks, and what it costs in noise.

A finding is *true* when it points at a labelled attack: it names the attacker's principal and
its time span meets the attack's (widened by one window on each side), or it carries one of the
attack's event ids. Figures:

- per technique: detected or not, and by which kinds of finding (model, detections);
- incident recall: labelled attacks with at least one true finding / all labelled attacks;
- finding precision: true findings / all findings in the evaluated period;
- false positives per 1,000 principal-days of the evaluated period.

Pure functions of (labels, findings, events); :func:`synthetic_quality_report` wires the
synthetic organisation, training and the pipeline together for the CLI and the notebook.

Imports: polars, and the detector's events, features, findings, pipeline, scoring, synthetic
and training modules.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import polars as pl

from detector.events import records_to_events
from detector.findings import Finding
from detector.pipeline import Pipeline
from detector.scoring import (
    DEFAULT_ALERT_BUDGET,
    ModelArtifact,
    OwnBaseline,
    calibrate_threshold,
    combined_score,
    load_artifact,
    raw_scores,
)
from detector.synthetic import AttackLabel, SyntheticConfig, generate
from detector.training import TrainingConfig, train

__all__ = [
    "LabelOutcome",
    "QualityReport",
    "budget_curve",
    "evaluate",
    "label_principals",
    "label_windows",
    "run_pipeline",
    "synthetic_quality_report",
    "window_scores",
]

STREAM_BATCH: Final = 5_000  # events per pipeline step when replaying a frame as a stream


@dataclass(frozen=True, slots=True)
class LabelOutcome:
    label: AttackLabel
    principal_key: str | None
    detected_by: tuple[str, ...]  # kinds of the true findings


@dataclass(frozen=True, slots=True)
class QualityReport:
    outcomes: tuple[LabelOutcome, ...]
    findings: tuple[Finding, ...]
    true_findings: int
    principal_days: int
    alert_budget: float

    @property
    def incident_recall(self) -> float:
        return sum(bool(o.detected_by) for o in self.outcomes) / max(len(self.outcomes), 1)

    @property
    def precision(self) -> float:
        return self.true_findings / len(self.findings) if self.findings else 1.0

    @property
    def false_positives(self) -> int:
        return len(self.findings) - self.true_findings

    @property
    def false_positives_per_1000_principal_days(self) -> float:
        return 1000.0 * self.false_positives / max(self.principal_days, 1)

    def text(self) -> str:
        lines = [
            f"{'technique':<26} {'detected':<9} by",
            *(
                f"{o.label.scenario:<26} {'yes' if o.detected_by else 'NO':<9} "
                f"{', '.join(o.detected_by) or '-'}"
                for o in self.outcomes
            ),
            "",
            f"incident recall        {self.incident_recall:.2f} "
            f"({sum(bool(o.detected_by) for o in self.outcomes)}/{len(self.outcomes)})",
            f"finding precision      {self.precision:.2f} "
            f"({self.true_findings}/{len(self.findings)})",
            f"false positives        {self.false_positives} "
            f"= {self.false_positives_per_1000_principal_days:.2f} per 1,000 principal-days "
            f"({self.principal_days} principal-days, alert budget {self.alert_budget:g})",
        ]
        return "\n".join(lines)


def label_principals(labels: Sequence[AttackLabel], events: pl.DataFrame) -> dict[str, str | None]:
    """The principal key of each label, from its first event as the event model keys it."""
    first_ids = {label.scenario_id: label.event_ids[0] for label in labels if label.event_ids}
    keys = dict(
        events.filter(pl.col("event_id").is_in(list(first_ids.values())))
        .select("event_id", "principal_key")
        .iter_rows()
    )
    return {sid: keys.get(eid) for sid, eid in first_ids.items()}


def _matches(finding: Finding, label: AttackLabel, key: str | None, slack: timedelta) -> bool:
    if not set(finding.event_ids).isdisjoint(label.event_ids):
        return True
    return (
        key is not None
        and finding.principal == key
        and finding.first_seen <= label.end + slack
        and finding.last_seen >= label.start - slack
    )


def evaluate(
    labels: Sequence[AttackLabel],
    findings: Sequence[Finding],
    events: pl.DataFrame,
    *,
    window: timedelta,
    alert_budget: float,
) -> QualityReport:
    """Score ``findings`` (of the evaluated period) against ``labels``; ``events`` are the
    evaluated period's events (for principal keys and principal-days)."""
    keys = label_principals(labels, events)
    true_ids: set[str] = set()
    outcomes = []
    for label in labels:
        key = keys.get(label.scenario_id)
        hits = [f for f in findings if _matches(f, label, key, window)]
        true_ids.update(f.finding_id for f in hits)
        outcomes.append(LabelOutcome(label, key, tuple(sorted({f.kind for f in hits}))))
    days = events.select("principal_key", pl.col("event_time").dt.date()).unique().height
    return QualityReport(
        tuple(outcomes),
        tuple(findings),
        sum(f.finding_id in true_ids for f in findings),
        days,
        alert_budget,
    )


def _batches(events: pl.DataFrame, size: int) -> Iterator[pl.DataFrame]:
    for start in range(0, events.height, size):
        yield events.slice(start, size)


def run_pipeline(
    pipeline: Pipeline, events: pl.DataFrame, *, batch: int = STREAM_BATCH
) -> list[Finding]:
    """Stream a frame (in its order) through the pipeline in micro-batches, then flush.
    ``created_at`` is the newest event time of each batch: deterministic, like a replay."""
    state = pipeline.initial_state()
    findings: list[Finding] = []
    clock = datetime(1970, 1, 1, tzinfo=UTC)
    for chunk in _batches(events, batch):
        newest = chunk.get_column("event_time").max()
        if isinstance(newest, datetime):
            clock = max(clock, newest)
        state, found, _ = pipeline.step(state, chunk, clock)
        findings.extend(found)
    state, found, _ = pipeline.flush(state, clock)
    findings.extend(found)
    return _latest_per_id(findings)


def _latest_per_id(findings: Sequence[Finding]) -> list[Finding]:
    """A finding id reported twice (a late correction of its window) is one finding."""
    by_id: dict[str, Finding] = {}
    for finding in findings:
        by_id[finding.finding_id] = finding
    return list(by_id.values())


def synthetic_quality_report(
    synthetic: SyntheticConfig,
    seed: int,
    *,
    training: TrainingConfig | None = None,
    model_dir: Path | None = None,
) -> QualityReport:
    """Train on the synthetic baseline, stream the whole trail, evaluate the attack period."""
    training = training or TrainingConfig(alert_budget=DEFAULT_ALERT_BUDGET)
    trail = generate(synthetic, seed)
    events = records_to_events(trail.records, origin="synthetic").events.sort("event_time")
    attack_start = synthetic.start + timedelta(days=synthetic.baseline_days)
    baseline = events.filter(pl.col("event_time") < attack_start)
    with tempfile.TemporaryDirectory() as tmp:
        folder = model_dir or Path(tmp) / "model"
        train(_batches(baseline, 50_000), folder, training, f"synthetic seed {seed}")
        pipeline = Pipeline(load_artifact(folder))
    findings = [f for f in run_pipeline(pipeline, events) if f.last_seen >= attack_start]
    attack_events = events.filter(pl.col("event_time") >= attack_start)
    return evaluate(
        trail.labels,
        findings,
        attack_events,
        window=training.features.window,
        alert_budget=training.alert_budget,
    )


def window_scores(artifact: ModelArtifact, windows: pl.DataFrame) -> pl.DataFrame:
    """Every window with both raw scores and the combined score, own baselines learned in
    window order from empty: the notebook's view of how the model sees a period."""
    ordered = windows.sort("window_start", "principal_key")
    _, raw = raw_scores(
        artifact.model,
        artifact.peers,
        OwnBaseline(artifact.feature_names),
        ordered,
        artifact.feature_names,
    )
    return ordered.with_columns(
        pl.Series("forest_score", raw.forest),
        pl.Series("deviation_sd", raw.deviation),
        pl.Series("score", combined_score(artifact, raw, ordered)),
    )


def label_windows(
    scored: pl.DataFrame, labels: Sequence[AttackLabel], events: pl.DataFrame, window: timedelta
) -> pl.DataFrame:
    """Adds ``scenario``: the labelled attack a window belongs to (principal and time), or null."""
    keys = label_principals(labels, events)
    spans = pl.DataFrame(
        {
            "principal_key": [keys.get(lb.scenario_id) for lb in labels],
            "scenario": [lb.scenario for lb in labels],
            "attack_start": [lb.start - window for lb in labels],
            "attack_end": [lb.end + window for lb in labels],
        },
        schema={
            "principal_key": pl.String,
            "scenario": pl.String,
            "attack_start": pl.Datetime("ms", "UTC"),
            "attack_end": pl.Datetime("ms", "UTC"),
        },
    )
    matched = (
        scored.with_row_index("_row")
        .join(spans, on="principal_key", how="inner")
        .filter(
            (pl.col("first_seen") <= pl.col("attack_end"))
            & (pl.col("last_seen") >= pl.col("attack_start"))
        )
        .group_by("_row")
        .agg(pl.col("scenario").first())
    )
    return scored.with_row_index("_row").join(matched, on="_row", how="left").drop("_row")


def budget_curve(
    train_scores: pl.DataFrame,
    test_scores: pl.DataFrame,
    budgets: Sequence[float],
) -> pl.DataFrame:
    """Model-only precision, incident recall and false positives per 1,000 principal-days on
    the test period, for thresholds calibrated to each alert budget on the training period.
    Both frames come from :func:`label_windows` (column ``scenario``)."""
    train_days = train_scores.select("principal_key", pl.col("window_start").dt.date()).unique()
    test_days = test_scores.select("principal_key", pl.col("window_start").dt.date()).unique()
    scores = train_scores.get_column("score").to_numpy()
    scenarios = test_scores.get_column("scenario").drop_nulls().unique().to_list()
    rows = []
    for budget in budgets:
        threshold = calibrate_threshold(scores, train_days.height, budget)
        flagged = test_scores.filter(pl.col("score") > threshold)
        true = int(flagged.get_column("scenario").is_not_null().sum())
        found = flagged.get_column("scenario").drop_nulls().n_unique()
        rows.append(
            {
                "alert_budget": budget,
                "threshold": threshold,
                "findings": flagged.height,
                "precision": true / flagged.height if flagged.height else 1.0,
                "incident_recall": found / max(len(scenarios), 1),
                "fp_per_1000_principal_days": 1000.0
                * (flagged.height - true)
                / max(test_days.height, 1),
            }
        )
    return pl.DataFrame(rows)
