"""The JSON Schema (draft 2020-12) of a serialised finding, for consumers outside Python.

Kept as a constant here rather than a ``.json`` file so that it ships with the package without
packaging configuration; ``json.dumps(FINDING_JSON_SCHEMA)`` gives the document. A test checks
that every finding the detector writes validates against it. Imports: the standard library.
"""

from __future__ import annotations

from typing import Any, Final

from detector.findings._finding import FINDING_SCHEMA_VERSION, MAX_SEVERITY, MIN_SEVERITY
from detector.findings._json import FINDING_FIELDS

__all__ = ["FINDING_JSON_SCHEMA"]

_UTC_TIME: Final = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
    "description": "ISO-8601 UTC with milliseconds",
}
_SCALAR: Final = {"type": ["string", "number", "boolean", "null"]}
_STRINGS: Final = {"type": "array", "items": {"type": "string"}}

FINDING_JSON_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/cloudtrail-detector/schemas/finding-v3.json",
    "title": "CloudTrail detector finding",
    "type": "object",
    "additionalProperties": False,
    "required": list(FINDING_FIELDS),
    "properties": {
        "finding_id": {
            "type": "string",
            "pattern": "^[0-9a-f]{32}$",
            "description": "hash of kind, principal and window_start (the aggregation period's "
            "start): repeats within the period update the finding under this id",
        },
        "schema_version": {"const": FINDING_SCHEMA_VERSION},
        "kind": {
            "type": "string",
            "pattern": "^[a-z][a-z0-9_]*$",
            "description": "'model_anomaly' or a detection id",
        },
        "title": {"type": "string", "minLength": 1},
        "severity": {"type": "number", "minimum": MIN_SEVERITY, "maximum": MAX_SEVERITY},
        "severity_label": {"enum": ["low", "medium", "high"]},
        "principal": {"type": "string", "minLength": 1, "description": "principal key"},
        "principal_arn": {"type": ["string", "null"]},
        "principal_type": {"type": "string"},
        "account_id": {"type": ["string", "null"]},
        "region": {"type": ["string", "null"]},
        "window_start": _UTC_TIME,
        "window_end": _UTC_TIME,
        "first_seen": _UTC_TIME,
        "last_seen": _UTC_TIME,
        "count": {
            "type": "integer",
            "minimum": 1,
            "description": "occurrences aggregated in this finding over its period",
        },
        "created_at": _UTC_TIME,
        "received_at": {
            "anyOf": [_UTC_TIME, {"type": "null"}],
            "description": "when the earliest of its events reached the detector (SQS "
            "SentTimestamp, or the archive file's delivery stamp); created_at minus this is the "
            "time to detect",
        },
        "provisional": {
            "type": "boolean",
            "description": "an early report of a model window still open: a later send of the "
            "same finding_id supersedes it",
        },
        "score": {"type": "number"},
        "signals": _STRINGS,
        "explanation": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["what", "value", "baseline", "detail", "contribution"],
                "properties": {
                    "what": {"type": "string"},
                    "value": _SCALAR,
                    "baseline": _SCALAR,
                    "detail": {"type": "string"},
                    "contribution": {"type": ["number", "null"]},
                },
            },
        },
        "event_ids": _STRINGS,
        "event_count": {"type": "integer", "minimum": 0},
        "source_ips": _STRINGS,
        "model_version": {"type": ["string", "null"]},
        "mitre": {"type": "array", "items": {"type": "string", "pattern": r"^T\d{4}(\.\d{3})?$"}},
        "evidence": {"type": "object"},
    },
}
