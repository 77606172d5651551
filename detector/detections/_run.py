"""Running detections over a batch of events: select, match, group, deduplicate, report.

One vectorised pass selects the rows any detection could match (event source and name,
principal type); each detection then matches on its own few rows; matches are grouped per
(detection, principal, dedup period) in polars, and only the groups, a handful per batch, are
turned into findings in Python.

A detection that raises fails alone (:func:`run_detections_isolated`, what the pipeline uses):
its error becomes a :class:`DetectionFailure`, and the other detections report as usual. The
one pass over all detections is tried first; only when it raises is each detection run on its
own, to find which failed. :func:`run_detections` lets the error through (tests and tools).

Imports: polars, orjson, detector.engine, detector.events (schema), detector.findings, this
package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson
import polars as pl

from detector.detections._detection import Detection, DetectionConfig, DetectionContext
from detector.detections._state import DetectionState, EmittedKey
from detector.engine import ENGINE
from detector.events import EVENT_COLUMNS
from detector.findings import ExplanationItem, Finding, JsonScalar, JsonValue, finding_id_of

__all__ = [
    "DETECTIONS_VERSION",
    "DETECTION_SCORE",
    "DetectionFailure",
    "DetectionRun",
    "run_detections",
    "run_detections_isolated",
]

DETECTIONS_VERSION: Final = "1"  # bump when a detection's logic changes what it reports
DETECTION_SCORE: Final = 1.0  # a signature matched or it did not: rank by severity instead

_MATCH_COLUMNS: Final = (
    "event_id",
    "event_time",
    "event_source",
    "event_name",
    "principal_key",
    "principal_arn",
    "principal_type",
    "account_id",
    "region",
    "source_ip",
    "source_ip_address",
    "evidence",
)


@dataclass(frozen=True, slots=True)
class DetectionFailure:
    """A detection that raised on a batch (a bug in it, not bad data): its id and the error."""

    detection_id: str
    error: str


@dataclass(frozen=True, slots=True)
class DetectionRun:
    """The state after a batch, the findings, and the detections that failed on it."""

    state: DetectionState
    findings: tuple[Finding, ...]
    failures: tuple[DetectionFailure, ...] = ()


def run_detections(
    events: pl.DataFrame,
    detections: Sequence[Detection],
    state: DetectionState,
    config: DetectionConfig,
    now: datetime,
    context: DetectionContext | None = None,
) -> tuple[DetectionState, tuple[Finding, ...]]:
    """Findings of ``detections`` on one batch of normalized events, and the state after it.

    A finding is reported once per detection, principal and ``config.dedup_period`` (aligned
    to the epoch): a later batch with more events of an already reported period adds nothing,
    and a replay of the same events gives findings with the same ids. ``now`` is the stream's
    clock (wall time live, the replay position in a replay): it stamps ``created_at`` and
    ages the state. ``context`` carries what the principal profile knows, when it exists.
    A detection that raises makes this raise; see :func:`run_detections_isolated`.
    """
    run = _run(events, detections, state, config, now, context, isolate=False)
    return run.state, run.findings


def run_detections_isolated(
    events: pl.DataFrame,
    detections: Sequence[Detection],
    state: DetectionState,
    config: DetectionConfig,
    now: datetime,
    context: DetectionContext | None = None,
) -> DetectionRun:
    """:func:`run_detections`, where a detection that raises fails alone: its error is in
    :attr:`DetectionRun.failures`, and the others' findings are reported as usual."""
    return _run(events, detections, state, config, now, context, isolate=True)


def _run(
    events: pl.DataFrame,
    detections: Sequence[Detection],
    state: DetectionState,
    config: DetectionConfig,
    now: datetime,
    context: DetectionContext | None,
    *,
    isolate: bool,
) -> DetectionRun:
    _check_inputs(events, detections, now)
    failed: dict[str, str] = {}
    matches = _matches(
        events, detections, config, context or DetectionContext(), failed if isolate else None
    )
    by_id = {d.id: d for d in detections}
    findings: list[Finding] = []
    emitted: list[EmittedKey] = []
    # Most batches match nothing: their (empty) matches are not grouped.
    groups = _groups(matches, config).iter_rows(named=True) if matches.height else iter(())
    for group in groups:
        key: EmittedKey = (group["detection_id"], group["principal_key"], group["window_start"])
        if key in state.emitted or key[0] in failed:
            continue
        try:
            finding = _finding(by_id[key[0]], group, config, now)
        except Exception as err:
            if not isolate:
                raise
            failed[key[0]] = _describe(err)
            continue
        emitted.append(key)
        findings.append(finding)
    # A detection that failed part way reports nothing on this batch rather than a part of it.
    emitted = [k for k in emitted if k[0] not in failed]
    kept = tuple(f for f in findings if f.kind not in failed)
    new_state = state.with_emitted(emitted).forget_before(now - config.state_retention)
    failures = tuple(DetectionFailure(i, e) for i, e in failed.items())
    return DetectionRun(new_state, kept, failures)


def _describe(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"


def _check_inputs(events: pl.DataFrame, detections: Sequence[Detection], now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"events frame lacks columns of the event schema: {missing}")
    ids = [d.id for d in detections]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"detections given more than once: {duplicated}")


def _matches(
    events: pl.DataFrame,
    detections: Sequence[Detection],
    config: DetectionConfig,
    context: DetectionContext,
    failed: dict[str, str] | None,
) -> pl.DataFrame:
    """Matched rows of all detections, with ``detection_id`` and ``evidence``. With
    ``failed``, a detection that raises adds its error there instead of raising."""
    empty = pl.DataFrame(schema=_match_schema(events))
    if not detections or events.is_empty():
        return empty
    try:
        # One pass over the whole batch; everything after runs on the few selected rows, and
        # only for the detections that selected any (a matcher matches nothing on no rows).
        selections = events.select(
            d.selects.fill_null(False).alias(str(i)) for i, d in enumerate(detections)
        )
        selecting = selections.select(pl.all().any()).row(0)
        active = [d for d, any_row in zip(detections, selecting, strict=True) if any_row]
        if not active:
            return empty
        candidates = events.filter(selections.select(pl.any_horizontal(pl.all())).to_series())
        return pl.concat(
            [_matched(candidates.lazy(), d, config, context) for d in active], how="vertical"
        ).collect(engine=ENGINE)
    except Exception:
        if failed is None:
            raise
    frames = [empty]
    for detection in detections:
        try:
            frames.append(
                _matched(events.lazy(), detection, config, context).collect(engine=ENGINE)
            )
        except Exception as err:
            failed[detection.id] = _describe(err)
    return pl.concat(frames, how="vertical")


def _matched(
    events: pl.LazyFrame, detection: Detection, config: DetectionConfig, context: DetectionContext
) -> pl.LazyFrame:
    return (
        detection.matches(events.filter(detection.selects), config, context)
        .select(_MATCH_COLUMNS)
        .with_columns(detection_id=pl.lit(detection.id, dtype=pl.String))
    )


def _match_schema(events: pl.DataFrame) -> pl.Schema:
    schema = {name: events.schema[name] for name in _MATCH_COLUMNS if name != "evidence"}
    return pl.Schema(schema | {"evidence": pl.String(), "detection_id": pl.String()})


def _groups(matches: pl.DataFrame, config: DetectionConfig) -> pl.DataFrame:
    """One row per (detection, principal, dedup period), in order of first event."""
    cap = config.max_sample
    signal = (
        pl.col("event_source").str.replace(r"\.amazonaws\.com$", "") + ":" + pl.col("event_name")
    )
    return (
        matches.with_columns(window_start=pl.col("event_time").dt.truncate(config.dedup_period))
        .sort("event_time", "event_id")
        .group_by("detection_id", "principal_key", "window_start", maintain_order=True)
        .agg(
            first_seen=pl.col("event_time").min(),
            last_seen=pl.col("event_time").max(),
            event_count=pl.len(),
            event_ids=pl.col("event_id").head(cap),
            source_ips=pl.coalesce("source_ip_address", "source_ip")
            .drop_nulls()
            .unique(maintain_order=True)
            .head(cap),
            signals=signal.unique(maintain_order=True),
            principal_arn=pl.col("principal_arn").drop_nulls().first(),
            principal_type=pl.col("principal_type").first(),
            account_id=pl.col("account_id").drop_nulls().first(),
            region=pl.col("region").drop_nulls().first(),
            evidence=pl.col("evidence"),
        )
    )


def _merged_evidence(texts: Sequence[str | None], cap: int) -> dict[str, JsonValue]:
    """The evidence of all events of one finding: per key, the distinct values in event
    order; a single value stays a scalar, lists stay lists; nulls are dropped."""
    values: dict[str, list[Any]] = {}
    listed: set[str] = set()
    for text in texts:
        for name, value in (orjson.loads(text) if text else {}).items():
            if value is None:
                continue
            if isinstance(value, list):
                listed.add(name)
            seen = values.setdefault(name, [])
            for item in value if isinstance(value, list) else [value]:
                if item not in seen:
                    seen.append(item)
    return {
        name: seen[:cap] if name in listed or len(seen) > 1 else seen[0]
        for name, seen in sorted(values.items())
    }


def _as_scalar(value: JsonValue) -> JsonScalar:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return value


def _finding(
    detection: Detection, group: Mapping[str, Any], config: DetectionConfig, now: datetime
) -> Finding:
    evidence = _merged_evidence(group["evidence"], config.max_sample)
    explanation = (
        ExplanationItem(what=detection.id, detail=detection.description),
        *(ExplanationItem(what=name, value=_as_scalar(v)) for name, v in evidence.items()),
    )
    window_start: datetime = group["window_start"]
    return Finding(
        finding_id=finding_id_of(detection.id, group["principal_key"], window_start),
        kind=detection.id,
        title=detection.title,
        severity=detection.severity,
        principal=group["principal_key"],
        principal_arn=group["principal_arn"],
        principal_type=group["principal_type"],
        account_id=group["account_id"],
        region=group["region"],
        window_start=window_start,
        window_end=window_start + config.dedup_period,
        first_seen=group["first_seen"],
        last_seen=group["last_seen"],
        created_at=now,
        score=DETECTION_SCORE,
        signals=tuple(group["signals"]),
        explanation=explanation,
        event_ids=tuple(group["event_ids"]),
        event_count=group["event_count"],
        source_ips=tuple(group["source_ips"]),
        model_version=f"detections/{DETECTIONS_VERSION}",
        mitre=detection.mitre,
        evidence=evidence,
    )
