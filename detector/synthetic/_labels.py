"""Ground truth: one :class:`AttackLabel` per injected scenario, and its JSON form.

A label says what happened (scenario, technique, MITRE ATT&CK id), who did it (the principal
ARN exactly as the malicious records show it, and the account), when (first and last event
time) and which records are malicious (their ``eventID``). Evaluation joins on ``eventID``.

Imports: the standard library and orjson.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

LABELS_FORMAT = "synthetic-cloudtrail-labels/1"


@dataclass(frozen=True, slots=True)
class AttackLabel:
    """The ground truth of one injected attack scenario."""

    scenario_id: str  # unique within a trail, e.g. "S3-recon_burst"
    scenario: str  # one of ``SCENARIOS``
    technique: str  # MITRE ATT&CK technique name
    mitre_attack_id: str  # e.g. "T1580"
    principal_arn: str  # ``userIdentity.arn`` of the malicious records
    account_id: str
    start: datetime  # first malicious eventTime (UTC)
    end: datetime  # last malicious eventTime (UTC)
    event_ids: tuple[str, ...]
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario_id": self.scenario_id,
            "scenario": self.scenario,
            "technique": self.technique,
            "mitre_attack_id": self.mitre_attack_id,
            "principal_arn": self.principal_arn,
            "account_id": self.account_id,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "event_ids": list(self.event_ids),
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttackLabel:
        return cls(
            scenario_id=str(data["scenario_id"]),
            scenario=str(data["scenario"]),
            technique=str(data["technique"]),
            mitre_attack_id=str(data["mitre_attack_id"]),
            principal_arn=str(data["principal_arn"]),
            account_id=str(data["account_id"]),
            start=datetime.fromisoformat(str(data["start"])),
            end=datetime.fromisoformat(str(data["end"])),
            event_ids=tuple(str(e) for e in data["event_ids"]),
            description=str(data.get("description", "")),
        )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def labels_to_json(labels: tuple[AttackLabel, ...] | list[AttackLabel]) -> bytes:
    """``{"format": ..., "labels": [...]}`` as indented JSON bytes (stable for a given input)."""
    document = {"format": LABELS_FORMAT, "labels": [label.to_dict() for label in labels]}
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def labels_from_json(data: bytes | str) -> tuple[AttackLabel, ...]:
    document = orjson.loads(data)
    return tuple(AttackLabel.from_dict(item) for item in document["labels"])
