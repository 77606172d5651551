"""Sigma rules as detections, and our detections as Sigma rules.

- :func:`compile_rules`: Sigma rule texts -> :class:`SigmaRules` (a
  :class:`~detector.detections.Detection` per CloudTrail rule that compiles, a
  :class:`Refusal` with the reason per rule that does not);
- :func:`load_rules`: the same from folders and ``s3://`` prefixes (the I/O edge);
- :func:`example_record`: a CloudTrail record holding given field values (rule examples);
- :func:`rules_table`: which rules compiled and which were refused, as Markdown;
- :func:`export_rules` / :func:`sigma_rules_of`: the native detections Sigma can express, as
  Sigma rules.

Imports: pySigma, polars, pyyaml, detector.detections, detector.events (and aiobotocore in
the loader, for S3).
"""

from detector.sigma._compile import KIND_PREFIX, Refusal, SigmaRules, compile_rule, compile_rules
from detector.sigma._examples import example_record
from detector.sigma._export import SIGMA_FORMS, export_rules, sigma_rule_of, sigma_rules_of
from detector.sigma._load import load_rules, read_rule_texts
from detector.sigma._report import rules_table

__all__ = [
    "KIND_PREFIX",
    "SIGMA_FORMS",
    "Refusal",
    "SigmaRules",
    "compile_rule",
    "compile_rules",
    "example_record",
    "export_rules",
    "load_rules",
    "read_rule_texts",
    "rules_table",
    "sigma_rule_of",
    "sigma_rules_of",
]
