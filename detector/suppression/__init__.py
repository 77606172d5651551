"""Suppression rules: hide known-benign findings, with a reason, an owner and an expiry.

- :func:`parse_rules` -> :class:`RuleSet` of :class:`SuppressionRule` (each with its
  :class:`Conditions`); a bad file raises :class:`SuppressionFileError` naming every problem by
  line;
- :func:`matching_rule` / :func:`split_findings`: the pure decision, at the finding's own event
  time (:func:`event_time`), so replay and the stream agree;
- :class:`Suppressor`: applies a file to batches, re-reading it when it changes, writing an
  audit record per suppressed finding and counting per rule;
- :func:`rules_source`: a local file or an ``s3://`` object.

Errors::

    DetectorError
    └── ConfigError
        └── SuppressionFileError    a rules file that cannot be used (lists the lines)

Imports: the standard library, pyyaml, orjson, aiobotocore (S3), detector.errors,
detector.findings and detector.sinks.
"""

from detector.suppression._match import (
    Split,
    event_names_of,
    event_time,
    matching_rule,
    split_findings,
    user_agents_of,
)
from detector.suppression._rules import (
    MATCH_FIELDS,
    Conditions,
    Problem,
    RuleSet,
    SuppressionFileError,
    SuppressionRule,
    parse_rules,
    rule_summary,
)
from detector.suppression._source import (
    DEFAULT_S3_CHECK_SECONDS,
    FileRulesSource,
    RulesSource,
    S3RulesSource,
    rules_source,
)
from detector.suppression._suppressor import Suppressor, audit_record, load_rule_set

__all__ = [
    "DEFAULT_S3_CHECK_SECONDS",
    "MATCH_FIELDS",
    "Conditions",
    "FileRulesSource",
    "Problem",
    "RuleSet",
    "RulesSource",
    "S3RulesSource",
    "Split",
    "SuppressionFileError",
    "SuppressionRule",
    "Suppressor",
    "audit_record",
    "event_names_of",
    "event_time",
    "load_rule_set",
    "matching_rule",
    "parse_rules",
    "rule_summary",
    "rules_source",
    "split_findings",
    "user_agents_of",
]
