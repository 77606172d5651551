"""Findings: the one record the detector reports, whether the model or a detection found it.

- :class:`Finding`: who, when, how bad (GuardDuty's 1.0-8.9 severity), why
  (:class:`ExplanationItem`), and the events behind it;
- :func:`finding_id_of`: the deterministic id (kind + principal + window start), so a re-score
  or a duplicate delivery gives the same id;
- :func:`aggregate_findings`: repeats of one kind for one principal within an aggregation
  period (6 h by default) become one finding with a ``count``;
- :func:`finding_to_json` / :func:`finding_from_json`: the stable serialised form, described by
  :data:`FINDING_JSON_SCHEMA`;
- :func:`finding_to_ocsf` / :func:`finding_to_asff`: the same finding as an OCSF Detection
  Finding (class 2004, OCSF :data:`OCSF_VERSION`) and as an AWS Security Finding Format document.

Imports: orjson and the standard library; nothing else in the detector (every stage may import
this package).
"""

from detector.findings._aggregation import (
    DEFAULT_AGGREGATION_PERIOD,
    AggregationConfig,
    AggregationState,
    aggregate_findings,
    first_report,
    flush_aggregates,
)
from detector.findings._asff import ASFF_SCHEMA_VERSION, asff_product_arn, finding_to_asff
from detector.findings._attack import ATTACK_VERSION, Tactic, Technique, technique
from detector.findings._finding import (
    FINDING_SCHEMA_VERSION,
    MAX_SEVERITY,
    MIN_SEVERITY,
    ExplanationItem,
    Finding,
    JsonScalar,
    JsonValue,
    SeverityLabel,
    finding_id_of,
    isoformat_ms,
    severity_label,
)
from detector.findings._json import (
    FINDING_FIELDS,
    finding_from_dict,
    finding_from_json,
    finding_to_dict,
    finding_to_json,
)
from detector.findings._ocsf import (
    OCSF_CLASS_UID,
    OCSF_PROFILES,
    OCSF_VERSION,
    finding_count,
    finding_to_ocsf,
)
from detector.findings._schema import FINDING_JSON_SCHEMA

__all__ = [
    "ASFF_SCHEMA_VERSION",
    "ATTACK_VERSION",
    "DEFAULT_AGGREGATION_PERIOD",
    "FINDING_FIELDS",
    "FINDING_JSON_SCHEMA",
    "FINDING_SCHEMA_VERSION",
    "MAX_SEVERITY",
    "MIN_SEVERITY",
    "OCSF_CLASS_UID",
    "OCSF_PROFILES",
    "OCSF_VERSION",
    "AggregationConfig",
    "AggregationState",
    "ExplanationItem",
    "Finding",
    "JsonScalar",
    "JsonValue",
    "SeverityLabel",
    "Tactic",
    "Technique",
    "aggregate_findings",
    "asff_product_arn",
    "finding_count",
    "finding_from_dict",
    "finding_from_json",
    "finding_id_of",
    "finding_to_asff",
    "finding_to_dict",
    "finding_to_json",
    "finding_to_ocsf",
    "first_report",
    "flush_aggregates",
    "isoformat_ms",
    "severity_label",
    "technique",
]
