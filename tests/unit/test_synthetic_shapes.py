"""Organisation shapes: presets are deterministic, their knobs put the actors they promise in
the trail, and the techniques missed elsewhere are injected and labelled."""

from __future__ import annotations

from functools import cache

import pytest

from detector.errors import ConfigError
from detector.synthetic import (
    ALL_SCENARIOS,
    DEVELOPMENT_SHAPES,
    HELD_BACK_SHAPES,
    SHAPES,
    SyntheticTrail,
    build_organisation,
    generate,
    shape_config,
)
from detector.synthetic._identity import Record


@cache
def _trail(shape: str) -> SyntheticTrail:
    return generate(shape_config(shape, baseline_days=3, attack_days=2, scale=0.4), seed=5)


def test_development_and_held_back_shapes_are_disjoint_presets() -> None:
    assert set(DEVELOPMENT_SHAPES).isdisjoint(HELD_BACK_SHAPES)
    assert set(DEVELOPMENT_SHAPES) | set(HELD_BACK_SHAPES) <= set(SHAPES)


def test_the_same_shape_and_seed_give_the_same_organisation() -> None:
    config = shape_config("enterprise", baseline_days=2, attack_days=1, scale=0.3)
    assert build_organisation(config, 3) == build_organisation(config, 3)
    assert build_organisation(config, 3) != build_organisation(config, 4)


def test_an_unknown_shape_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown organisation shape"):
        shape_config("nope")


def test_every_technique_is_injected_and_labelled() -> None:
    trail = _trail("enterprise")
    assert sorted(label.scenario for label in trail.labels) == sorted(ALL_SCENARIOS)
    ids = {r["eventID"] for r in trail.records}
    assert all(set(label.event_ids) <= ids for label in trail.labels)


def _by_arn_part(trail: SyntheticTrail, part: str) -> list[Record]:
    return [r for r in trail.records if part in r["userIdentity"].get("arn", "")]


def test_a_scanner_reads_every_service_in_every_account() -> None:
    trail = _trail("regulated")
    calls = _by_arn_part(trail, "cspm-scanner")
    accounts = {r["recipientAccountId"] for r in calls}
    assert accounts == {a.account_id for a in trail.organisation.accounts}
    assert len({r["eventSource"] for r in calls}) >= 10


def test_nat_egress_applications_call_from_the_gateway_without_an_endpoint() -> None:
    trail = _trail("startup")
    natted = [app for app in trail.organisation.apps if app.nat_ip]
    assert natted
    calls = _by_arn_part(trail, f"assumed-role/{natted[0].role.name}/")
    assert calls
    direct = [r for r in calls if r["sourceIPAddress"] == natted[0].nat_ip]
    assert direct
    assert all("vpcEndpointId" not in r for r in direct)


def test_mfa_less_users_sign_in_without_mfa() -> None:
    trail = _trail("enterprise")
    logins = [
        r for r in _by_arn_part(trail, ":user/ops-console-") if r["eventName"] == "ConsoleLogin"
    ]
    assert logins
    assert {r["additionalEventData"]["MFAUsed"] for r in logins} == {"No"}


def test_new_pipelines_start_mid_period_and_are_labelled_benign() -> None:
    trail = _trail("saas-ci-heavy")
    new = [p for p in trail.organisation.pipelines if p.first_day > 0]
    assert new
    assert {n.scenario for n in trail.novelties} >= {"benign_new_pipeline"}
    start = trail.config.start_epoch + new[0].first_day * 86_400
    earlier = [
        r
        for r in _by_arn_part(trail, f"assumed-role/{new[0].role.name}/")
        if r["eventTime"] < _iso(start)
    ]
    assert earlier == []


def test_a_batch_job_decrypts_far_more_on_its_peak_day() -> None:
    trail = _trail("data-platform")
    job = trail.organisation.batch_jobs[0]
    calls = _by_arn_part(trail, f"assumed-role/{job.role.name}/")
    per_day: dict[str, int] = {}
    for r in calls:
        per_day[r["eventTime"][:10]] = per_day.get(r["eventTime"][:10], 0) + 1
    peak = _iso(trail.config.start_epoch + job.peak_day * 86_400)[:10]
    others = [n for day, n in per_day.items() if day != peak]
    assert per_day[peak] > 20 * max(others)
    assert any(n.scenario == "benign_batch_peak" for n in trail.novelties)


def _iso(t: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
