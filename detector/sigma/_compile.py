"""Sigma rules compiled to detections: pySigma parses, we compile, or refuse with the reason.

:func:`compile_rules` takes rule texts (YAML) and returns a :class:`SigmaRules`: a
:class:`~detector.detections.Detection` per rule with logsource ``product: aws, service:
cloudtrail`` that compiles (kind ``sigma:<rule id>``), a :class:`Refusal` per rule that does
not, and the count of rules for other logsources. A compiled rule is an ordinary detection:
the detection runner pre-selects, matches, groups and deduplicates it like the native ones.

Each compiled rule carries a positive and a negative example made from its own condition
(:mod:`detector.sigma._examples`), and is refused unless the compiled detection finds the
positive and not the negative: a check of the compiler on every rule it loads.

Imports: polars, pySigma, detector.detections, detector.events, this package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import polars as pl
import yaml
from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaError
from sigma.rule import SigmaLevel, SigmaRule

from detector.detections import (
    Detection,
    DetectionConfig,
    DetectionContext,
    DetectionState,
    Example,
    Matcher,
    run_detections,
)
from detector.events import records_to_events
from detector.sigma._examples import (
    example_record,
    negative_assignments,
    positive_assignments,
)
from detector.sigma._fields import JSON_OBJECTS, field_expr
from detector.sigma._tree import (
    AnyOf,
    Node,
    UnsupportedError,
    condition_of,
    expression,
    fields_of,
    preselection,
)

__all__ = ["KIND_PREFIX", "Refusal", "SigmaRules", "compile_rule", "compile_rules", "severity_of"]

KIND_PREFIX: Final = "sigma:"
# Sigma levels on GuardDuty's 1.0-8.9 scale (low 1-3.9, medium 4-6.9, high 7-8.9).
_SEVERITY: Final = {
    SigmaLevel.INFORMATIONAL: 1.0,
    SigmaLevel.LOW: 2.5,
    SigmaLevel.MEDIUM: 5.0,
    SigmaLevel.HIGH: 7.5,
    SigmaLevel.CRITICAL: 8.9,
}
_TECHNIQUE: Final = re.compile(r"t\d{4}(\.\d{3})?")
_EXAMPLE_NOW: Final = datetime(2024, 5, 1, 13, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A rule we do not run, and why. ``rule_id`` is None when the file did not parse."""

    source: str
    rule_id: str | None
    title: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: rule {self.rule_id or '(no id)'} refused: {self.reason}"


@dataclass(frozen=True, slots=True)
class SigmaRules:
    detections: tuple[Detection, ...] = ()
    refused: tuple[Refusal, ...] = ()
    other_logsource: int = 0  # rules for other products or services, not ours to run
    sources: dict[str, str] = field(default_factory=dict)  # detection id -> rule file


def severity_of(level: SigmaLevel | None) -> float:
    """Our severity of a Sigma level; a rule without a level counts as medium."""
    return _SEVERITY[level] if level is not None else _SEVERITY[SigmaLevel.MEDIUM]


def _is_cloudtrail(rule: SigmaRule) -> bool:
    source = rule.logsource
    return source.product == "aws" and source.service == "cloudtrail"


def _condition(rule: SigmaRule) -> Node:
    conditions = [condition_of(c.parse()) for c in rule.detection.parsed_condition]
    return conditions[0] if len(conditions) == 1 else AnyOf(tuple(conditions))


def _evidence(node: Node) -> pl.Expr:
    # What the rule looked at, whole JSON objects left out (the event ids lead to them).
    shown = [f for f in fields_of(node) if f not in JSON_OBJECTS][:8]
    if not shown:
        return pl.lit("{}", dtype=pl.String).alias("evidence")
    return pl.struct([field_expr(f).alias(f) for f in shown]).struct.json_encode().alias("evidence")


def _examples(detection_id: str, node: Node) -> tuple[dict[str, object], dict[str, object]]:
    """The first generated positive the condition matches, and negative it does not."""
    match = expression(node)

    def matched(record: dict[str, object]) -> bool | None:
        parsed = records_to_events([record], origin=f"{detection_id} example")
        if parsed.failures:
            return None
        return parsed.events.filter(match).height == 1

    positive = next(
        (r for a in positive_assignments(node) if matched(r := example_record(a))), None
    )
    negative = next(
        (r for a in negative_assignments(node) if matched(r := example_record(a)) is False), None
    )
    if positive is None:
        raise UnsupportedError("no event that the rule matches could be made from its condition")
    if negative is None:
        raise UnsupportedError("no event that the rule does not match could be made")
    return positive, negative


def _matcher(condition: pl.Expr, evidence: pl.Expr) -> Matcher:
    def matches(
        events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
    ) -> pl.LazyFrame:
        return events.filter(condition).with_columns(evidence)

    return matches


def compile_rule(rule: SigmaRule, source: str) -> Detection:
    """The detection of one CloudTrail rule; :class:`UnsupportedError` says why not."""
    if rule.id is None:
        raise UnsupportedError("the rule has no id (a finding's kind needs one)")
    detection_id = f"{KIND_PREFIX}{rule.id}"
    node = _condition(rule)
    positive, negative = _examples(detection_id, node)
    techniques = tuple(
        t.name.upper()
        for t in rule.tags
        if t.namespace == "attack" and _TECHNIQUE.fullmatch(t.name)
    )
    detection = Detection(
        id=detection_id,
        title=rule.title,
        description=(rule.description or rule.title).strip(),
        severity=severity_of(rule.level),
        mitre=tuple(dict.fromkeys(techniques)),
        selects=preselection(node),
        matches=_matcher(expression(node), _evidence(node)),
        positives=((positive,),),
        negatives=((negative,),),
        anchors=(f"Sigma: {source}",),
    )
    _check_examples(detection)
    return detection


def _fires(detection: Detection, records: Example) -> bool:
    events = records_to_events(records, origin=detection.id).events
    _, found = run_detections(
        events, (detection,), DetectionState(), DetectionConfig(), _EXAMPLE_NOW
    )
    return bool(found)


def _check_examples(detection: Detection) -> None:
    if not all(_fires(detection, p) for p in detection.positives):
        raise UnsupportedError("the compiled rule misses its own positive example")
    if any(_fires(detection, n) for n in detection.negatives):
        raise UnsupportedError("the compiled rule fires on its own negative example")


def _id_and_title(text: str) -> tuple[str | None, str | None]:
    """The id and title of a rule pySigma refused, when the file is YAML at all."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return None, None
    if not isinstance(document, dict):
        return None, None
    found = (document.get("id"), document.get("title"))
    return tuple(None if v is None else str(v) for v in found)  # type: ignore[return-value]


def compile_rules(texts: Iterable[tuple[str, str]]) -> SigmaRules:
    """Compile ``(source, yaml text)`` pairs; nothing raises: bad rules become refusals."""
    detections: list[Detection] = []
    refused: list[Refusal] = []
    sources: dict[str, str] = {}
    other = 0
    for source, text in texts:
        try:
            collection = SigmaCollection.from_yaml(text)
        except (SigmaError, yaml.YAMLError) as err:
            rule_id, title = _id_and_title(text)
            refused.append(Refusal(source, rule_id, title, f"not a valid Sigma rule: {err}"))
            continue
        for rule in collection.rules:
            rule_id = None if getattr(rule, "id", None) is None else str(rule.id)
            title = getattr(rule, "title", None)
            if not isinstance(rule, SigmaRule):
                kind = type(rule).__name__
                refused.append(Refusal(source, rule_id, title, f"{kind} is not supported"))
                continue
            if not _is_cloudtrail(rule):
                other += 1
                continue
            try:
                detection = compile_rule(rule, source)
            except (UnsupportedError, SigmaError, ValueError) as err:
                refused.append(Refusal(source, rule_id, title, str(err)))
                continue
            if detection.id in sources:
                reason = f"rule id already loaded from {sources[detection.id]}"
                refused.append(Refusal(source, rule_id, title, reason))
                continue
            sources[detection.id] = source
            detections.append(detection)
    return SigmaRules(tuple(detections), tuple(refused), other, sources)
