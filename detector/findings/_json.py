"""Findings to and from JSON: one stable form for sinks, golden files and replays.

Keys come in a fixed order (the order of :data:`FINDING_FIELDS`; keys inside ``evidence`` are
sorted), times are ISO-8601 UTC with milliseconds and ``Z``, lists stay lists. The same finding
always serialises to the same bytes. Imports: orjson and this package's record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import orjson

from detector.findings._finding import (
    FINDING_SCHEMA_VERSION,
    ExplanationItem,
    Finding,
    JsonValue,
    isoformat_ms,
    severity_label,
)

__all__ = [
    "FINDING_FIELDS",
    "finding_from_dict",
    "finding_from_json",
    "finding_to_dict",
    "finding_to_json",
]

FINDING_FIELDS: Final = (
    "finding_id",
    "schema_version",
    "kind",
    "title",
    "severity",
    "severity_label",
    "principal",
    "principal_arn",
    "principal_type",
    "account_id",
    "region",
    "window_start",
    "window_end",
    "first_seen",
    "last_seen",
    "count",
    "created_at",
    "received_at",
    "provisional",
    "score",
    "signals",
    "explanation",
    "event_ids",
    "event_count",
    "source_ips",
    "model_version",
    "mitre",
    "evidence",
)
_TIME_FIELDS: Final = ("window_start", "window_end", "first_seen", "last_seen", "created_at")
_LIST_FIELDS: Final = ("signals", "event_ids", "source_ips", "mitre")
_PREVIOUS_VERSION: Final = 2
_ADDED_IN_3: Final[dict[str, Any]] = {"received_at": None, "provisional": False}
_ITEM_FIELDS: Final = ("what", "value", "baseline", "detail", "contribution")


def _sorted_json(value: JsonValue) -> JsonValue:
    if isinstance(value, Mapping):
        return {k: _sorted_json(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted_json(v) for v in value]
    return value


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    """The JSON-ready form: plain dicts, lists, strings and numbers, in :data:`FINDING_FIELDS`
    order."""
    out: dict[str, Any] = {}
    for name in FINDING_FIELDS:
        if name == "severity_label":
            out[name] = finding.severity_label
        elif name in _TIME_FIELDS:
            out[name] = isoformat_ms(getattr(finding, name))
        elif name == "received_at":
            received = finding.received_at
            out[name] = None if received is None else isoformat_ms(received)
        elif name in _LIST_FIELDS:
            out[name] = list(getattr(finding, name))
        elif name == "explanation":
            out[name] = [
                {f: getattr(item, f) for f in _ITEM_FIELDS} for item in finding.explanation
            ]
        elif name == "evidence":
            out[name] = _sorted_json(dict(finding.evidence))
        else:
            out[name] = getattr(finding, name)
    return out


def finding_to_json(finding: Finding) -> bytes:
    """Compact UTF-8 JSON of one finding (one line: ready for JSON Lines sinks)."""
    return orjson.dumps(finding_to_dict(finding))


def _time(doc: Mapping[str, Any], name: str) -> datetime:
    text = doc[name]
    if not isinstance(text, str) or not text.endswith("Z"):
        raise ValueError(f"finding field '{name}': expected an ISO-8601 UTC time ending in Z")
    return datetime.fromisoformat(text)


def _optional_time(doc: Mapping[str, Any], name: str) -> datetime | None:
    return None if doc[name] is None else _time(doc, name)


def _flag(doc: Mapping[str, Any], name: str) -> bool:
    value = doc[name]
    if not isinstance(value, bool):
        raise ValueError(f"finding field '{name}': expected true or false, got {value!r}")
    return value


def finding_from_dict(doc: Mapping[str, Any]) -> Finding:
    """The finding of a :func:`finding_to_dict` form. Raises ``ValueError`` naming the field when
    the document is not a finding of this schema version. A version 2 document (saved state,
    older sinks) reads as a final finding without a receipt time."""
    if doc.get("schema_version") == _PREVIOUS_VERSION:
        doc = {**doc, "schema_version": FINDING_SCHEMA_VERSION, **_ADDED_IN_3}
    missing = [name for name in FINDING_FIELDS if name not in doc]
    if missing:
        raise ValueError(f"finding is missing fields: {', '.join(missing)}")
    extra = sorted(set(doc) - set(FINDING_FIELDS))
    if extra:
        raise ValueError(f"finding has unknown fields: {', '.join(extra)}")
    try:
        finding = Finding(
            finding_id=doc["finding_id"],
            schema_version=doc["schema_version"],
            kind=doc["kind"],
            title=doc["title"],
            severity=float(doc["severity"]),
            principal=doc["principal"],
            principal_arn=doc["principal_arn"],
            principal_type=doc["principal_type"],
            account_id=doc["account_id"],
            region=doc["region"],
            window_start=_time(doc, "window_start"),
            window_end=_time(doc, "window_end"),
            first_seen=_time(doc, "first_seen"),
            last_seen=_time(doc, "last_seen"),
            created_at=_time(doc, "created_at"),
            score=float(doc["score"]),
            count=int(doc["count"]),
            signals=tuple(doc["signals"]),
            explanation=tuple(ExplanationItem(**item) for item in doc["explanation"]),
            event_ids=tuple(doc["event_ids"]),
            event_count=int(doc["event_count"]),
            source_ips=tuple(doc["source_ips"]),
            model_version=doc["model_version"],
            mitre=tuple(doc["mitre"]),
            evidence=dict(doc["evidence"]),
            received_at=_optional_time(doc, "received_at"),
            provisional=_flag(doc, "provisional"),
        )
    except (TypeError, KeyError) as err:
        raise ValueError(f"finding is malformed: {err}") from err
    if doc["severity_label"] != severity_label(finding.severity):
        raise ValueError(
            f"finding field 'severity_label': {doc['severity_label']!r} does not match severity "
            f"{finding.severity}"
        )
    return finding


def finding_from_json(data: bytes | str) -> Finding:
    """The finding of one :func:`finding_to_json` document."""
    doc = orjson.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("finding JSON is not an object")
    return finding_from_dict(doc)
