"""Every real sample in ../shared/data parses, or yields a failure naming record and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from detector.events import EVENT_SCHEMA, ParseResult, envelopes_to_events, records_to_events
from tests.conftest import load_jsonl, load_stratus


def assert_accounted_for(result: ParseResult, inputs: int) -> None:
    """Each input is a row, a reported duplicate, or a failure with a field and a reason."""
    assert result.events.schema == EVENT_SCHEMA
    duplicates = inputs - result.events.height - len(result.failures)
    assert duplicates >= 0
    assert duplicates == 0 or result.duplicate_event_ids
    for failure in result.failures:
        assert failure.field
        assert failure.reason
        assert str(failure).startswith(failure.origin)


def test_every_stratus_detonation_record_parses(shared_data: Path) -> None:
    files = sorted((shared_data / "stratus-red-team").glob("*.json"))
    assert files, "no Stratus Red Team files"
    for path in files:
        records = load_stratus(path)
        result = records_to_events(records, origin=path.name)
        # Real AWS wrote these: nothing may fail, and every record has a principal key.
        assert result.failures == (), [str(f) for f in result.failures]
        assert_accounted_for(result, len(records))
        assert result.events.get_column("principal_key").null_count() == 0
        assert result.events.get_column("source_ip_kind").null_count() == 0


def test_every_panther_case_parses_or_fails_precisely(shared_data: Path) -> None:
    cases = load_jsonl(shared_data / "panther-rule-cases.jsonl")
    parsed = 0
    for i, case in enumerate(cases):
        result = records_to_events([case["event"]], origin=f"panther:{case['rule_id']}#{i}")
        assert_accounted_for(result, 1)
        parsed += result.events.height
        for failure in result.failures:
            # Failures are the documented non-CloudTrail shapes: Panther's own time format
            # variants and lower-cased keys, or hand-written cases without a time.
            assert failure.field in {"eventTime", "eventSource", "eventName", "userAgent"}
    assert parsed >= 0.9 * len(cases)


def test_every_streamalert_case_parses_or_fails_precisely(shared_data: Path) -> None:
    cases = load_jsonl(shared_data / "streamalert-format-cases.jsonl")
    for i, case in enumerate(cases):
        event: Any = case["event"]
        if case["envelope"] is not None:
            body = orjson.dumps({**case["envelope"], "detail": event})
            result = envelopes_to_events([body], message_ids=[f"streamalert#{i}"])
        else:
            result = records_to_events([event], origin=f"streamalert#{i}")
        assert_accounted_for(result, 1)


def test_a_federation_token_session_is_keyed_under_its_issuing_user(shared_data: Path) -> None:
    name = "aws.persistence.sts-federation-token.json"
    events = records_to_events(load_stratus(shared_data / "stratus-red-team" / name), origin=name)
    keys = dict(events.events.select("principal_type", "principal_key").iter_rows())
    user = keys["IAMUser"]
    assert user.endswith(":user/stratus-red-team-user-federation-user")
    assert keys["FederatedUser"] == f"{user}#stratus_red_team"
