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

:func:`evaluate_shape` does the same for organisations of different shapes
(:mod:`detector.synthetic` presets), from a cold start and with the same defaults for every
shape, in two modes: ``default`` (the shipped model, untrained on the shape) and ``trained``
(a model trained on the shape's own clean first days). Its figures are split into the
cold-start week and the steady state after it; :func:`shape_report_text` prints the table.

Imports: polars, and the detector's events, features, findings, pipeline, scoring, synthetic
and training modules.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
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
    DEFAULT_MODEL_DIR,
    ModelArtifact,
    OwnBaseline,
    calibrate_threshold,
    combined_score,
    load_artifact,
    raw_scores,
)
from detector.synthetic import (
    DEVELOPMENT_SEEDS,
    DEVELOPMENT_SHAPES,
    HELD_BACK_SEEDS,
    HELD_BACK_SHAPES,
    AttackLabel,
    SyntheticConfig,
    attack_labels,
    generate,
    iter_records,
    novelty_labels,
    shape_config,
)
from detector.training import TrainingConfig, train

__all__ = [
    "COLD_START_DAYS",
    "MODES",
    "LabelOutcome",
    "PeriodFigures",
    "QualityReport",
    "ShapeResult",
    "budget_curve",
    "evaluate",
    "evaluate_shape",
    "evaluate_shapes",
    "label_principals",
    "label_windows",
    "run_pipeline",
    "shape_report_json",
    "shape_report_text",
    "shape_runs",
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


# --- organisations of different shapes ------------------------------------------------------

COLD_START_DAYS: Final = 7
MODES: Final = ("default", "trained")
_PARSE_CHUNK: Final = 50_000


@dataclass(frozen=True, slots=True)
class PeriodFigures:
    """Findings of one period (by ``first_seen``) against the labels that start in it."""

    incidents: int
    detected: int
    findings: int
    true_findings: int
    principal_days: int
    novelty_findings: int  # false findings on labelled benign novelties
    false_by_kind: tuple[tuple[str, int], ...] = ()  # (kind, false findings), most first

    @property
    def incident_recall(self) -> float | None:
        return self.detected / self.incidents if self.incidents else None

    @property
    def precision(self) -> float | None:
        return self.true_findings / self.findings if self.findings else None

    @property
    def false_findings(self) -> int:
        return self.findings - self.true_findings

    @property
    def false_per_1000_principal_days(self) -> float:
        return 1000.0 * self.false_findings / max(self.principal_days, 1)


@dataclass(frozen=True, slots=True)
class ShapeResult:
    shape: str
    seed: int
    mode: str
    held_back: bool
    events: int
    principals: int
    incident_recall: float
    missed: tuple[str, ...]  # techniques without a true finding
    cold_start: PeriodFigures
    steady_state: PeriodFigures


def _shape_events(config: SyntheticConfig, seed: int) -> pl.DataFrame:
    """The trail as normalized events, parsed in chunks (the records are never all held)."""
    frames: list[pl.DataFrame] = []
    chunk: list[dict[str, object]] = []
    for record in iter_records(config, seed):
        chunk.append(record)
        if len(chunk) == _PARSE_CHUNK:
            frames.append(records_to_events(chunk, origin="synthetic").events)
            chunk = []
    if chunk:
        frames.append(records_to_events(chunk, origin="synthetic").events)
    return pl.concat(frames).sort("event_time")


def _novelty_keys(novelties: Sequence[AttackLabel], events: pl.DataFrame) -> dict[str, str]:
    arns = [label.principal_arn for label in novelties]
    rows = (
        events.filter(pl.col("principal_arn").is_in(arns))
        .group_by("principal_arn")
        .agg(pl.col("principal_key").first())
        .iter_rows()
    )
    return dict(rows)


def _period(
    labels: Sequence[AttackLabel],
    novelties: Sequence[AttackLabel],
    findings: Sequence[Finding],
    events: pl.DataFrame,
    all_events: pl.DataFrame,
    window: timedelta,
    lo: datetime,
    hi: datetime,
) -> PeriodFigures:
    """Figures of [lo, hi): findings first seen in it, labels starting in it."""
    keys = label_principals(labels, all_events)
    inside = [f for f in findings if lo <= f.first_seen < hi]
    own = [label for label in labels if lo <= label.start < hi]
    true_ids: set[str] = set()
    detected = 0
    for label in labels:
        hits = [f for f in inside if _matches(f, label, keys.get(label.scenario_id), window)]
        true_ids.update(f.finding_id for f in hits)
        detected += bool(hits) and label in own
    novelty_keys = _novelty_keys(novelties, all_events)
    novel = {
        f.finding_id
        for f in inside
        for n in novelties
        if f.finding_id not in true_ids
        and f.principal == novelty_keys.get(n.principal_arn)
        and f.first_seen <= n.end + window
        and f.last_seen >= n.start - window
    }
    period = events.filter((pl.col("event_time") >= lo) & (pl.col("event_time") < hi))
    days = period.select("principal_key", pl.col("event_time").dt.date()).unique().height
    false_kinds = Counter(f.kind for f in inside if f.finding_id not in true_ids)
    return PeriodFigures(
        incidents=len(own),
        detected=detected,
        findings=len(inside),
        true_findings=sum(f.finding_id in true_ids for f in inside),
        principal_days=days,
        novelty_findings=len(novel),
        false_by_kind=tuple(sorted(false_kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


def evaluate_shape(
    shape: str,
    seed: int,
    mode: str,
    *,
    config: SyntheticConfig | None = None,
    events: pl.DataFrame | None = None,
    default_model: Path = DEFAULT_MODEL_DIR,
    training: TrainingConfig | None = None,
) -> ShapeResult:
    """Run one shape and seed from a cold start (empty state) through the whole trail.

    ``mode`` ``"default"`` uses the model at ``default_model`` as shipped; ``"trained"`` first
    trains one, with the default :class:`TrainingConfig`, on the trail before the attack period
    (the shape's own clean first days). No setting depends on the shape. ``config`` overrides
    the shape's configuration (a test's tiny organisation); ``events`` reuses a parsed trail.
    """
    if mode not in MODES:
        raise ValueError(f"unknown evaluation mode {mode!r}; known: {list(MODES)}")
    config = config or shape_config(shape)
    if events is None:
        events = _shape_events(config, seed)
    attack_start = config.start + timedelta(days=config.baseline_days)
    with tempfile.TemporaryDirectory() as tmp:
        if mode == "trained":
            training = training or TrainingConfig()
            baseline = events.filter(pl.col("event_time") < attack_start)
            folder = Path(tmp) / "model"
            train(_batches(baseline, 50_000), folder, training, f"{shape} seed {seed}")
            artifact = load_artifact(folder)
        else:
            artifact = load_artifact(default_model)
    pipeline = Pipeline(artifact)
    findings = run_pipeline(pipeline, events)
    labels = attack_labels(config, seed)
    novelties = novelty_labels(config, seed)
    window = pipeline.config.features.window
    whole = evaluate(labels, findings, events, window=window, alert_budget=0.0)
    cold_end = config.start + timedelta(days=COLD_START_DAYS)
    end = config.start + timedelta(days=config.days)
    figures = [
        _period(labels, novelties, findings, events, events, window, lo, hi)
        for lo, hi in ((config.start, cold_end), (cold_end, end))
    ]
    return ShapeResult(
        shape=shape,
        seed=seed,
        mode=mode,
        held_back=shape in HELD_BACK_SHAPES or seed in HELD_BACK_SEEDS,
        events=events.height,
        principals=events.get_column("principal_key").n_unique(),
        incident_recall=whole.incident_recall,
        missed=tuple(o.label.scenario for o in whole.outcomes if not o.detected_by),
        cold_start=figures[0],
        steady_state=figures[1],
    )


def shape_runs(
    shapes: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[tuple[str, int]]:
    """(shape, seed) pairs to evaluate: the given shapes times the given seeds; by default
    the development shapes on the development seeds, then the held-back shapes on the
    held-back seeds."""
    if shapes is None and seeds is None:
        return [(sh, se) for sh in DEVELOPMENT_SHAPES for se in DEVELOPMENT_SEEDS] + [
            (sh, se) for sh in HELD_BACK_SHAPES for se in HELD_BACK_SEEDS
        ]
    chosen = list(shapes) if shapes is not None else [*DEVELOPMENT_SHAPES, *HELD_BACK_SHAPES]
    return [(sh, se) for sh in chosen for se in (seeds or DEVELOPMENT_SEEDS)]


def evaluate_shapes(
    runs: Sequence[tuple[str, int]],
    modes: Sequence[str] = MODES,
    *,
    scale: float = 1.0,
    on_result: Callable[[ShapeResult], None] | None = None,
) -> list[ShapeResult]:
    """:func:`evaluate_shape` for every run and mode; each trail is generated and parsed once
    for all modes. ``on_result`` sees each result as it comes (progress)."""
    results = []
    for shape, seed in runs:
        config = shape_config(shape, scale=scale)
        events = _shape_events(config, seed)
        for mode in modes:
            result = evaluate_shape(shape, seed, mode, config=config, events=events)
            if on_result is not None:
                on_result(result)
            results.append(result)
    return results


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def shape_report_text(results: Sequence[ShapeResult]) -> str:
    """One line per shape, seed and mode: recall, then precision and false findings per
    1,000 principal-days for the cold-start week and for the steady state."""
    head = (
        f"{'shape':<15} {'seed':>4} {'set':<9} {'mode':<8} {'recall':>6} "
        f"{'cold prec':>9} {'cold FP/1k':>10} {'steady prec':>11} {'steady FP/1k':>12} "
        f"{'novelty':>7}  missed"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        c, s = r.cold_start, r.steady_state
        lines.append(
            f"{r.shape:<15} {r.seed:>4} {'held-back' if r.held_back else 'dev':<9} "
            f"{r.mode:<8} {r.incident_recall:>6.2f} {_ratio(c.precision):>9} "
            f"{c.false_per_1000_principal_days:>10.1f} {_ratio(s.precision):>11} "
            f"{s.false_per_1000_principal_days:>12.1f} "
            f"{c.novelty_findings + s.novelty_findings:>7}  {', '.join(r.missed) or '-'}"
        )
    kinds = Counter[str]()
    for r in results:
        for period in (r.cold_start, r.steady_state):
            kinds.update(dict(period.false_by_kind))
    if kinds:
        lines += [
            "",
            "false findings by kind, all rows: "
            + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])),
        ]
    lines += [
        "",
        f"cold = the first {COLD_START_DAYS} days from an empty state; steady = the days after. "
        "prec = findings precision; FP/1k = false findings per 1,000 principal-days; "
        "novelty = false findings on labelled benign novelties.",
    ]
    return "\n".join(lines)


def _period_json(p: PeriodFigures) -> dict[str, object]:
    return {
        "incidents": p.incidents,
        "detected": p.detected,
        "incident_recall": p.incident_recall,
        "findings": p.findings,
        "true_findings": p.true_findings,
        "precision": p.precision,
        "false_findings": p.false_findings,
        "principal_days": p.principal_days,
        "false_per_1000_principal_days": p.false_per_1000_principal_days,
        "novelty_findings": p.novelty_findings,
        "false_by_kind": dict(p.false_by_kind),
    }


def shape_report_json(results: Sequence[ShapeResult]) -> list[dict[str, object]]:
    return [
        {
            "shape": r.shape,
            "seed": r.seed,
            "mode": r.mode,
            "held_back": r.held_back,
            "events": r.events,
            "principals": r.principals,
            "incident_recall": r.incident_recall,
            "missed": list(r.missed),
            "cold_start": _period_json(r.cold_start),
            "steady_state": _period_json(r.steady_state),
        }
        for r in results
    ]
