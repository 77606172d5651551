"""Fixtures of the service tests: a pipeline on the small trained model, a slice of the
synthetic trail's attack day as SQS message bodies with the findings it must produce, and the
moto-server fixtures of ``tests/integration`` (moto's in-process mocks do not reach aiobotocore).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.events import records_to_events
from detector.pipeline import Pipeline
from detector.scoring import load_artifact
from detector.synthetic import envelope
from tests.integration.conftest import moto_endpoint, moto_enforcing_auth, moto_server, sqs_admin

__all__ = ["moto_endpoint", "moto_enforcing_auth", "moto_server", "sqs_admin"]

NOW = datetime(2024, 3, 9, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Stream:
    """Envelope bodies in arrival order, their event ids, and the finding ids that one
    pipeline fed every event must produce."""

    bodies: list[bytes]
    event_ids: list[str]
    finding_ids: frozenset[str]

    def __len__(self) -> int:
        return len(self.bodies)


def stream_of(records: list[dict[str, Any]], pipeline: Pipeline, prefix: str) -> Stream:
    bodies = [orjson.dumps(envelope(r, f"{prefix}-{i}")) for i, r in enumerate(records)]
    events = records_to_events(records, origin=prefix).events
    _, findings, _ = pipeline.step(pipeline.initial_state(), events, NOW)
    return Stream(
        bodies, [r["eventID"] for r in records], frozenset(f.finding_id for f in findings)
    )


@pytest.fixture(scope="session")
def pipeline(trained_model_dir: Path) -> Pipeline:
    return Pipeline(load_artifact(trained_model_dir))


@pytest.fixture(scope="session")
def attack_morning(small_trail: Any) -> list[dict[str, Any]]:
    """About 75 minutes of the attack day (07:30-08:45), with CloudTrail tampering, queue and
    IAM attacks in it: enough events for windows to close and for detections to fire."""
    day = small_trail.config.start + timedelta(days=small_trail.config.baseline_days)
    start, end = day + timedelta(hours=7, minutes=30), day + timedelta(hours=8, minutes=45)
    return [
        r
        for r in small_trail.records
        if start.isoformat()[:19] <= r["eventTime"][:19] < end.isoformat()[:19]
    ]


@pytest.fixture(scope="session")
def morning_stream(attack_morning: list[dict[str, Any]], pipeline: Pipeline) -> Stream:
    return stream_of(attack_morning, pipeline, "morning")


def _between(records: list[dict[str, Any]], *spans: tuple[str, str]) -> list[dict[str, Any]]:
    return [r for r in records if any(a <= r["eventTime"][11:16] < b for a, b in spans)]


@pytest.fixture(scope="session")
def tamper_stream(attack_morning: list[dict[str, Any]], pipeline: Pipeline) -> Stream:
    """Two dense slices (~250 events, shallow enough for moto): CloudTrail and GuardDuty
    switched off (07:44-07:54), a queue's encryption removed (08:04-08:12). Each spans less
    than the allowed lateness, so any delivery order within a slice gives the same findings;
    feed the second once the first is consumed (``moto_helpers.split``)."""
    records = _between(attack_morning, ("07:44", "07:54"), ("08:04", "08:12"))
    return stream_of(records, pipeline, "tamper")


@pytest.fixture(scope="session")
def short_stream(attack_morning: list[dict[str, Any]], pipeline: Pipeline) -> Stream:
    """Four minutes (~60 events) with CloudTrail logging stopped and reduced."""
    return stream_of(_between(attack_morning, ("07:46", "07:50")), pipeline, "short")
