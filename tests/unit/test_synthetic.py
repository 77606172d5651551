"""The synthetic CloudTrail generator: determinism, record shapes, labels, delivery, writers."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

import detector.synthetic as synthetic
from detector.errors import ConfigError
from detector.synthetic import (
    SCENARIOS,
    AttackLabel,
    SyntheticConfig,
    SyntheticTrail,
    attack_labels,
    generate,
    iter_days,
    iter_records,
    labels_from_json,
    labels_to_json,
    plan_envelopes,
    plan_log_files,
    read_labels,
    write_archive,
    write_envelopes,
    write_labels,
)
from detector.synthetic.__main__ import main

SMALL = SyntheticConfig(
    baseline_days=1,
    attack_days=1,
    workload_accounts=2,
    people=4,
    iam_users=3,
    pipelines=2,
    apps=3,
    instances_per_app=2,
    app_calls_per_instance_hour=20.0,
)
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
LOG_KEY = re.compile(
    r"^AWSLogs/(?:o-[a-z0-9]{10,32}/)?(?P<account>\d{12})/CloudTrail/(?P<region>[a-z0-9-]+)/"
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P=account)_CloudTrail_(?P=region)_"
    r"(?P<stamp>\d{8}T\d{4}Z)_[A-Za-z0-9]{16}\.json\.gz$"
)
DIGEST_KEY = re.compile(
    r"^AWSLogs/(?:o-[a-z0-9]{10,32}/)?(?P<account>\d{12})/CloudTrail-Digest/(?P<region>[a-z0-9-]+)/"
    r"\d{4}/\d{2}/\d{2}/(?P=account)_CloudTrail-Digest_(?P=region)_[\w-]+_(?P=region)_"
    r"\d{8}T\d{6}Z\.json\.gz$"
)
REQUIRED = (
    "eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion",
    "sourceIPAddress", "userAgent", "requestParameters", "responseElements", "eventID",
    "readOnly", "eventType", "managementEvent", "recipientAccountId", "eventCategory",
)  # fmt: skip


@pytest.fixture(scope="module")
def trail() -> SyntheticTrail:
    return generate(SMALL, seed=11)


@pytest.fixture(scope="module")
def by_id(trail: SyntheticTrail) -> dict[str, dict[str, Any]]:
    return {record["eventID"]: record for record in trail.records}


def thinned(records: list[dict[str, Any]], keep_every: int) -> list[dict[str, Any]]:
    """Every rare-typed record and every n-th API call, in the original order (keeps tests fast)."""
    return [
        r for i, r in enumerate(records) if r["eventType"] != "AwsApiCall" or i % keep_every == 0
    ]


def epoch(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def test_public_names_are_the_intended_ones() -> None:
    assert set(synthetic.__all__) == {
        "DEFAULT_APPS", "DEFAULT_APP_CALLS_PER_INSTANCE_HOUR", "DEFAULT_ATTACK_DAYS",
        "DEFAULT_BASELINE_DAYS", "DEFAULT_ERROR_RATE", "DEFAULT_IAM_USERS",
        "DEFAULT_INSTANCES_PER_APP", "DEFAULT_PEOPLE", "DEFAULT_PIPELINES", "DEFAULT_REGIONS",
        "DEFAULT_START", "DEFAULT_TRAVEL_PROBABILITY", "DEFAULT_WORKLOAD_ACCOUNTS", "SCENARIOS",
        "ALL_SCENARIOS", "MISSED_SCENARIOS", "DEVELOPMENT_SEEDS", "DEVELOPMENT_SHAPES",
        "HELD_BACK_SEEDS", "HELD_BACK_SHAPES", "SHAPES", "shape_config", "novelty_labels",
        "ArchiveSummary", "AttackLabel", "LogFile", "Organisation", "SyntheticConfig",
        "SyntheticTrail", "attack_labels", "build_organisation", "envelope", "generate",
        "iter_days", "iter_records", "labels_from_json", "labels_to_json", "log_file_key",
        "plan_envelopes", "plan_log_files", "read_labels", "write_archive", "write_envelopes",
        "write_labels",
    }  # fmt: skip
    for name in synthetic.__all__:
        assert hasattr(synthetic, name)


# --- determinism ----------------------------------------------------------------------------


def test_same_seed_gives_identical_records_in_event_time_order(trail: SyntheticTrail) -> None:
    streamed = list(iter_records(SMALL, seed=11))  # a second run, through the iterator
    assert orjson.dumps(streamed) == orjson.dumps(trail.records)
    assert labels_to_json(attack_labels(SMALL, seed=11)) == labels_to_json(trail.labels)
    times = [r["eventTime"] for r in streamed]
    assert times == sorted(times)


def test_days_split_the_same_stream_by_utc_day(trail: SyntheticTrail) -> None:
    days = list(iter_days(SMALL, seed=11))
    assert len(days) == SMALL.days
    assert [r for day in days for r in day] == trail.records
    for day in days:
        assert len({r["eventTime"][:10] for r in day}) == 1


def test_different_seed_gives_different_records(trail: SyntheticTrail) -> None:
    other = generate(SMALL, seed=12)
    assert orjson.dumps(other.records) != orjson.dumps(trail.records)
    assert {r["eventID"] for r in other.records}.isdisjoint(r["eventID"] for r in trail.records)


def test_written_outputs_are_byte_identical(tmp_path: Path) -> None:
    config = SyntheticConfig(
        baseline_days=1, attack_days=0, scenarios=(), workload_accounts=1, people=2,
        iam_users=1, pipelines=1, apps=1, instances_per_app=1, app_calls_per_instance_hour=10.0,
    )  # fmt: skip
    for run in ("a", "b"):
        write_archive(iter_records(config, 5), tmp_path / run / "archive", seed=5)
        write_envelopes(iter_records(config, 5), tmp_path / run / "envelopes.jsonl", seed=5)
    files_a = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    files_b = sorted(
        p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file()
    )
    assert files_a == files_b
    assert len(files_a) > 10
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


# --- record shapes --------------------------------------------------------------------------


def test_every_record_has_the_required_keys_and_valid_values(trail: SyntheticTrail) -> None:
    start, end = SMALL.start_epoch, SMALL.end_epoch
    assert len(trail.records) > 2_000
    for record in trail.records:
        missing = [key for key in REQUIRED if key not in record]
        assert not missing, (missing, record)
        assert record["eventVersion"] in {"1.08", "1.09"}
        assert ISO.match(record["eventTime"]), record["eventTime"]
        assert start <= epoch(record["eventTime"]) < end
        assert UUID.match(record["eventID"])
        assert record["eventType"] in {"AwsApiCall", "AwsConsoleSignIn", "AwsServiceEvent"}
        assert re.fullmatch(r"\d{12}", record["recipientAccountId"])
        assert record["eventCategory"] in {"Management", "Data"}
        assert record["managementEvent"] is (record["eventCategory"] == "Management")
        assert isinstance(record["readOnly"], bool)
        assert isinstance(record["userIdentity"], dict)
        if record["eventType"] == "AwsApiCall":
            assert "requestID" in record
        if "errorCode" in record:
            assert record["errorMessage"]
            assert record["responseElements"] is None
    assert len({r["eventID"] for r in trail.records}) == len(trail.records)


def test_application_roles_call_through_vpc_endpoints_with_kms_resources(
    trail: SyntheticTrail,
) -> None:
    kms = [
        r for r in trail.records
        if r["eventSource"] == "kms.amazonaws.com" and "vpcEndpointId" in r
    ]  # fmt: skip
    assert len(kms) > 100
    for record in kms:
        assert record["vpcEndpointId"].startswith("vpce-")
        assert record["vpcEndpointAccountId"] == record["recipientAccountId"]
        assert record["sourceIPAddress"].startswith("10.")
        assert record["resources"][0]["type"] == "AWS::KMS::Key"
        assert record["resources"][0]["ARN"].startswith("arn:aws:kms:")
        assert record["tlsDetails"]["clientProvidedHostHeader"].startswith("kms.")
    ec2 = [r for r in kms if r["userIdentity"]["sessionContext"].get("ec2RoleDelivery")]
    assert ec2
    assert all(r["userIdentity"]["arn"].rsplit("/", 1)[1].startswith("i-0") for r in ec2)


def test_data_events_are_sqs_s3_and_dynamodb(trail: SyntheticTrail) -> None:
    data = [r for r in trail.records if r["eventCategory"] == "Data"]
    assert {r["eventSource"] for r in data} <= {
        "sqs.amazonaws.com", "s3.amazonaws.com", "dynamodb.amazonaws.com",
    }  # fmt: skip
    names = {r["eventName"] for r in data}
    assert {"SendMessage", "ReceiveMessage", "DeleteMessage"} <= names


def test_console_sign_ins_and_console_sessions(trail: SyntheticTrail) -> None:
    logins = [r for r in trail.records if r["eventName"] == "ConsoleLogin"]
    assert logins
    for login in logins:
        assert login["eventType"] == "AwsConsoleSignIn"
        assert login["additionalEventData"]["MFAUsed"] in {"Yes", "No"}
        assert login["responseElements"]["ConsoleLogin"] in {"Success", "Failure"}
    console = [r for r in trail.records if r.get("sessionCredentialFromConsole") == "true"]
    assert console
    mfa = [r for r in trail.records if r["eventName"] == "CredentialChallenge"]
    assert {r["additionalEventData"]["CredentialType"] for r in mfa} & {"WEBAUTHN", "TOTP"}


def test_service_principals_and_on_behalf_calls(trail: SyntheticTrail) -> None:
    services = [r for r in trail.records if r["userIdentity"].get("type") == "AWSService"]
    assert {r["userIdentity"]["invokedBy"] for r in services} >= {"cloudtrail.amazonaws.com"}
    assert any(r["eventName"] == "AssumeRole" for r in services)
    on_behalf = [
        r for r in trail.records
        if r["userIdentity"].get("type") == "AssumedRole" and "invokedBy" in r["userIdentity"]
    ]  # fmt: skip
    assert {r["sourceIPAddress"] for r in on_behalf} >= {
        "sqs.amazonaws.com",
        "config.amazonaws.com",
    }
    assert any(r["sourceIPAddress"] == "AWS Internal" for r in trail.records)


def test_people_travel_and_admins_chain_roles_with_source_identity() -> None:
    config = SyntheticConfig(
        baseline_days=3, attack_days=0, scenarios=(), apps=1, instances_per_app=1,
        app_calls_per_instance_hour=1.0, people=16, pipelines=0, iam_users=0,
        travel_probability=0.3,
    )  # fmt: skip
    people = generate(config, seed=1)
    chained = [
        r for r in people.records
        if r["userIdentity"].get("sessionContext", {}).get("sourceIdentity")
    ]  # fmt: skip
    assert chained
    for record in chained:
        assert record["userIdentity"]["arn"].endswith(
            "/" + record["userIdentity"]["sessionContext"]["sourceIdentity"]
        )
    assumed = [
        r for r in people.records
        if r["eventName"] == "AssumeRole" and r["userIdentity"]["type"] == "AssumedRole"
    ]  # fmt: skip
    assert all(r["requestParameters"]["sourceIdentity"] for r in assumed)
    trip_owner = {
        trip.ip: person.email for person in people.organisation.people for trip in person.trips
    }
    from_trips = [r for r in people.records if r["sourceIPAddress"] in trip_owner]
    assert from_trips  # people work while travelling, from addresses never seen before
    for record in from_trips:
        who = record["userIdentity"].get("userName") or record["userIdentity"]["arn"]
        assert who.endswith(trip_owner[record["sourceIPAddress"]])


def test_ci_uses_web_identity_then_its_session(trail: SyntheticTrail) -> None:
    web = [r for r in trail.records if r["eventName"] == "AssumeRoleWithWebIdentity"]
    assert web
    keys = {r["responseElements"]["credentials"]["accessKeyId"] for r in web}
    used = {
        r["userIdentity"].get("accessKeyId")
        for r in trail.records
        if r["userIdentity"].get("sessionContext", {}).get("webIdFederationData")
    }
    assert keys <= used


def test_normal_traffic_has_ordinary_errors(trail: SyntheticTrail) -> None:
    baseline_end = SMALL.attack_start_epoch
    codes = Counter(
        r["errorCode"]
        for r in trail.records
        if "errorCode" in r and epoch(r["eventTime"]) < baseline_end
    )
    assert any("AccessDenied" in code or "Unauthorized" in code for code in codes)
    assert any("Throttl" in code or "Limit" in code for code in codes)


# --- labels ---------------------------------------------------------------------------------


def test_every_scenario_is_labelled_once(trail: SyntheticTrail) -> None:
    assert sorted(label.scenario for label in trail.labels) == sorted(SCENARIOS)
    assert len({label.scenario_id for label in trail.labels}) == len(SCENARIOS)
    assert all(re.fullmatch(r"T\d{4}(\.\d{3})?", label.mitre_attack_id) for label in trail.labels)


def test_labels_point_at_existing_events_after_the_baseline(
    trail: SyntheticTrail, by_id: dict[str, dict[str, Any]]
) -> None:
    seen: set[str] = set()
    for label in trail.labels:
        assert label.event_ids
        assert seen.isdisjoint(label.event_ids)
        seen.update(label.event_ids)
        events = [by_id[event_id] for event_id in label.event_ids]
        times = [epoch(e["eventTime"]) for e in events]
        assert min(times) >= SMALL.attack_start_epoch
        assert label.start == datetime.fromtimestamp(min(times), UTC)
        assert label.end == datetime.fromtimestamp(max(times), UTC)
        assert {e["recipientAccountId"] for e in events} == {label.account_id}
        callers = [e for e in events if e["eventName"] != "ConsoleLogin"]
        assert all(e["userIdentity"]["arn"] == label.principal_arn for e in callers)


def test_stolen_credentials_reuse_the_instance_key_from_outside(
    trail: SyntheticTrail, by_id: dict[str, dict[str, Any]]
) -> None:
    label = next(lb for lb in trail.labels if lb.scenario == "stolen_role_credentials")
    malicious = [by_id[e] for e in label.event_ids if "invokedBy" not in by_id[e]["userIdentity"]]
    keys = {e["userIdentity"]["accessKeyId"] for e in malicious}
    assert len(keys) == 1
    assert all("vpcEndpointId" not in e for e in malicious)
    assert all(e["userIdentity"]["sessionContext"]["ec2RoleDelivery"] == "2.0" for e in malicious)
    legit = [
        r for r in trail.records
        if r["userIdentity"].get("accessKeyId") in keys and r["eventID"] not in label.event_ids
    ]  # fmt: skip
    assert legit
    assert all(r.get("vpcEndpointId") for r in legit if "invokedBy" not in r["userIdentity"])
    assert {e["sourceIPAddress"] for e in malicious}.isdisjoint(r["sourceIPAddress"] for r in legit)
    assert {e["userAgent"] for e in malicious}.isdisjoint(r["userAgent"] for r in legit)


def test_attack_events_have_the_signature_shapes(
    trail: SyntheticTrail, by_id: dict[str, dict[str, Any]]
) -> None:
    names = {
        label.scenario: [by_id[e]["eventName"] for e in label.event_ids] for label in trail.labels
    }
    assert {"StopLogging", "DeleteTrail", "PutEventSelectors", "DeleteDetector"} <= set(
        names["logging_disabled"]
    )
    assert {"CreateUser", "AttachUserPolicy", "CreateAccessKey", "CreateLoginProfile",
            "UpdateAssumeRolePolicy"} <= set(names["iam_persistence"])  # fmt: skip
    recon = [
        by_id[e] for e in next(lb for lb in trail.labels if lb.scenario == "recon_burst").event_ids
    ]
    assert len({e["eventSource"] for e in recon}) >= 15
    assert sum("errorCode" in e for e in recon) > len(recon) / 3
    burst = names["kms_decrypt_burst"]
    assert 300 <= len(burst) < 5_000
    assert set(burst) == {"Decrypt"}
    public = [
        by_id[e] for lb in trail.labels if lb.scenario == "queue_made_public" for e in lb.event_ids
    ]
    policies = [
        e["requestParameters"]["attributes"]["Policy"]
        for e in public
        if e["eventName"] == "SetQueueAttributes"
    ]
    assert json.loads(policies[0])["Statement"][0]["Principal"] == "*"
    removed = [
        by_id[e]
        for lb in trail.labels
        if lb.scenario == "queue_encryption_removed"
        for e in lb.event_ids
    ]
    attributes = [
        e["requestParameters"]["attributes"]
        for e in removed
        if e["eventName"] == "SetQueueAttributes"
    ]
    assert {"KmsMasterKeyId": ""} in attributes
    assert {"SqsManagedSseEnabled": "false"} in attributes


def test_labels_can_be_planned_alone_and_round_trip_as_json(
    trail: SyntheticTrail, tmp_path: Path
) -> None:
    assert attack_labels(SMALL, seed=11) == trail.labels
    assert labels_from_json(labels_to_json(trail.labels)) == trail.labels
    write_labels(trail.labels, tmp_path / "labels.json")
    assert read_labels(tmp_path / "labels.json") == trail.labels
    document = json.loads((tmp_path / "labels.json").read_text())
    assert document["labels"][0]["start"].endswith("Z")
    assert isinstance(trail.labels[0], AttackLabel)


def test_a_clean_config_has_no_labels() -> None:
    clean = SyntheticConfig(baseline_days=1, attack_days=0, scenarios=(), people=2, apps=1)
    assert attack_labels(clean, seed=1) == ()


# --- archive --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, trail: SyntheticTrail) -> Path:
    root = tmp_path_factory.mktemp("archive")
    summary = write_archive(
        _archived(trail), root, seed=3, organization_id=trail.organisation.org_id
    )
    assert summary.records == len(_archived(trail))
    return root


def _archived(trail: SyntheticTrail) -> list[dict[str, Any]]:
    # The attack day only: enough traffic for late and unsorted delivery, half the files.
    return [r for r in trail.records if epoch(r["eventTime"]) >= SMALL.attack_start_epoch]


def _log_files(root: Path) -> dict[str, list[dict[str, Any]]]:
    files = {}
    for path in sorted(root.rglob("*.json.gz")):
        key = path.relative_to(root).as_posix()
        if "CloudTrail-Digest" in key:
            continue
        document = json.loads(gzip.decompress(path.read_bytes()))
        assert isinstance(document["Records"], list)
        files[key] = document["Records"]
    return files


def test_archive_keys_follow_cloudtrails_layout(archive: Path, trail: SyntheticTrail) -> None:
    files = _log_files(archive)
    assert files
    total = 0
    for key, records in files.items():
        match = LOG_KEY.match(key)
        assert match, key
        assert key.startswith(f"AWSLogs/{trail.organisation.org_id}/")
        stamp = match["stamp"]
        delivered = epoch(f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:00Z")
        assert f"{match['y']}{match['m']}{match['d']}" == match["stamp"][:8]
        assert {r["recipientAccountId"] for r in records} == {match["account"]}
        assert {r["awsRegion"] for r in records} == {match["region"]}
        times = [epoch(r["eventTime"]) for r in records]
        assert max(times) <= delivered + 60  # the stamp is the delivery minute
        assert delivered - min(times) <= 25 * 60
        total += len(records)
    assert total == len(_archived(trail))


def test_archive_has_digest_files_pointing_at_log_files(archive: Path) -> None:
    keys = {p.relative_to(archive).as_posix() for p in archive.rglob("*.json.gz")}
    digests = [k for k in keys if "CloudTrail-Digest" in k]
    assert digests
    for key in digests:
        assert DIGEST_KEY.match(key), key
        document = json.loads(gzip.decompress((archive / key).read_bytes()))
        assert "Records" not in document
        assert document["logFiles"]
        assert all(item["s3Object"] in keys for item in document["logFiles"])


def test_delivery_is_late_and_unsorted_sometimes(archive: Path) -> None:
    files = _log_files(archive)
    by_stream: defaultdict[tuple[str, str], list[tuple[str, list[int]]]] = defaultdict(list)
    unsorted = 0
    for key, records in files.items():
        match = LOG_KEY.match(key)
        assert match
        times = [epoch(r["eventTime"]) for r in records]
        unsorted += times != sorted(times)
        by_stream[(match["account"], match["region"])].append((match["stamp"], times))
    assert unsorted > 0
    late = 0
    for stream in by_stream.values():
        stream.sort()
        newest_so_far = 0
        for _, times in stream:
            late += sum(t < newest_so_far for t in times)
            newest_so_far = max(newest_so_far, *times)
    assert late > 0


def test_plain_layout_without_organization(tmp_path: Path, trail: SyntheticTrail) -> None:
    files = list(plan_log_files(trail.records[:500], seed=1))
    summary = write_archive(trail.records[:500], tmp_path, seed=1, digests=False)
    assert len(summary.log_files) == len(files)
    assert summary.digest_files == ()
    assert all(re.match(r"^AWSLogs/\d{12}/CloudTrail/", p.as_posix()) for p in summary.log_files)


# --- envelopes ------------------------------------------------------------------------------


def test_envelopes_have_the_right_detail_type_and_arrive_roughly_in_order(
    tmp_path: Path, trail: SyntheticTrail
) -> None:
    records = thinned(trail.records, 4)
    count = write_envelopes(records, tmp_path / "envelopes.jsonl", seed=2)
    lines = (tmp_path / "envelopes.jsonl").read_bytes().splitlines()
    assert count == len(lines) == len(records)
    expected = {
        "AwsApiCall": "AWS API Call via CloudTrail",
        "AwsConsoleSignIn": "AWS Console Sign In via CloudTrail",
        "AwsServiceEvent": "AWS Service Event via CloudTrail",
    }
    envelopes = [json.loads(line) for line in lines]
    seen_types = set()
    for item in envelopes:
        detail = item["detail"]
        assert item["version"] == "0"
        assert UUID.match(item["id"])
        assert item["detail-type"] == expected[detail["eventType"]]
        assert item["source"] == "aws." + detail["eventSource"].split(".")[0]
        assert item["account"] == detail["recipientAccountId"]
        assert item["region"] == detail["awsRegion"]
        assert item["time"] == detail["eventTime"]
        assert item["resources"] == []
        seen_types.add(detail["eventType"])
    assert seen_types == set(expected)
    times = [epoch(e["time"]) for e in envelopes]
    assert times != sorted(times)
    newest = 0
    for t in times:
        assert t >= newest - 120
        newest = max(newest, t)
    assert next(iter(plan_envelopes(trail.records[:10], seed=2)))["detail"] in trail.records[:10]
    write_envelopes(records, tmp_path / "envelopes.jsonl.gz", seed=2)
    assert gzip.decompress((tmp_path / "envelopes.jsonl.gz").read_bytes()).splitlines() == lines


# --- configuration and entry point ----------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"start": datetime(2024, 3, 4, 5, tzinfo=UTC)},
        {"start": datetime(2024, 3, 4)},  # noqa: DTZ001 -- naive on purpose
        {"scenarios": ("no_such_attack",)},
        {"attack_days": 0},
        {"iam_users": 0},
        {"error_rate": 1.5},
        {"regions": ()},
    ],
)
def test_bad_configs_are_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SyntheticConfig(**changes)


def test_events_per_day_sizing_is_roughly_right() -> None:
    config = SyntheticConfig(baseline_days=1, attack_days=0, scenarios=()).with_events_per_day(
        40_000
    )
    count = sum(1 for _ in iter_records(config, seed=4))
    assert 0.7 * 40_000 < count < 1.3 * 40_000


def test_main_writes_archive_envelopes_and_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["--out", str(tmp_path), "--seed", "9", "--days", "2", "--attack-days", "1",
         "--people", "3", "--apps", "3", "--events-per-day", "3000", "--org-trail",
         "--workload-accounts", "1", "--regions", "eu-west-1"]
    )  # fmt: skip
    assert code == 0
    assert "labels" in capsys.readouterr().out
    assert list((tmp_path / "archive" / "AWSLogs").glob("o-*/*/CloudTrail/*"))
    assert (tmp_path / "envelopes.jsonl").stat().st_size > 0
    assert len(read_labels(tmp_path / "labels.json")) == len(SCENARIOS)
    assert main(["--out", str(tmp_path), "--days", "1", "--attack-days", "1"]) == 2
