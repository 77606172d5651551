"""The labelled attack scenarios, injected into the attack period on top of normal traffic.

Four actors play the seven scenarios; scenarios of one actor run in order, as a real intrusion
would (``recon_burst`` then ``iam_persistence``; ``logging_disabled`` then the queue changes):

====================  ==============================================  ========================
actor                 whose identity                                  scenarios
====================  ==============================================  ========================
instance thief        an EC2 role's session credentials (same key,    stolen_role_credentials
                      same session name), from an outside address
insider code          an ECS/Lambda role, from its usual place        kms_decrypt_burst
key thief             a legacy IAM user's access key, from outside    recon_burst,
                                                                      iam_persistence
session hijacker      an administrator's Identity Center session,     logging_disabled,
                      from an outside address                         queue_encryption_removed,
                                                                      queue_made_public
====================  ==============================================  ========================

Every scenario draws from its own seeded stream and reads only the fixed organisation (and the
pure :func:`._context.credential_key`), so the attacks are the same whatever the rest of the
traffic is, and labels can be planned without generating the baseline.

Imports: the standard library, orjson, and this package's modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from random import Random
from typing import Final

import orjson

from detector.errors import ConfigError
from detector.synthetic._apps import AppCalls
from detector.synthetic._catalog import READS, RECON, Call, Resources
from detector.synthetic._config import SyntheticConfig
from detector.synthetic._context import CREDENTIAL_PERIOD, credential_key, period_start
from detector.synthetic._formats import DAY, aws_id, hex_string, kebab, public_ipv4, sts_time
from detector.synthetic._identity import (
    IamUser,
    IdentityFactory,
    Record,
    iam_user,
    role_session,
)
from detector.synthetic._labels import AttackLabel
from detector.synthetic._org import App, Incarnation, Organisation, Person
from detector.synthetic._records import (
    DATA,
    GLOBAL_REGION,
    Caller,
    TimedRecord,
    access_denied,
    api_call,
    console_login,
    s3_additional,
)

# (technique name, MITRE ATT&CK id, description) per scenario.
TECHNIQUES: Final = {
    "stolen_role_credentials": (
        "Valid Accounts: Cloud Accounts",
        "T1078.004",
        "EC2 instance-role credentials used from outside the VPC: recon, then secrets and data",
    ),
    "kms_decrypt_burst": (
        "Data from Cloud Storage",
        "T1530",
        "An application role decrypting far above its usual rate",
    ),
    "recon_burst": (
        "Cloud Infrastructure Discovery",
        "T1580",
        "A leaked access key enumerating many services and regions, mostly denied",
    ),
    "logging_disabled": (
        "Impair Defenses: Disable or Modify Cloud Logs",
        "T1562.008",
        "CloudTrail event selectors reduced, logging stopped, trail and GuardDuty deleted",
    ),
    "queue_encryption_removed": (
        "Impair Defenses",
        "T1562",
        "SQS queue encryption removed (KmsMasterKeyId cleared, SSE-SQS off)",
    ),
    "queue_made_public": (
        "Transfer Data to Cloud Account",
        "T1537",
        "SQS queue policy changed to allow Principal '*'",
    ),
    "iam_persistence": (
        "Account Manipulation",
        "T1098",
        "Backdoor IAM user with AdministratorAccess, keys and console password; "
        "another user's key; a role trusting an outside account",
    ),
    "failed_defense_evasion": (
        "Impair Defenses: Disable or Modify Tools",
        "T1562.001",
        "An IAM user's key, from a new address, trying and failing (AccessDenied) to stop "
        "CloudTrail logging and to disable GuardDuty",
    ),
    "crypto_mining": (
        "Resource Hijacking",
        "T1496",
        "Dozens of large GPU instances launched by a CI role in a region it never used",
    ),
    "sparse_instance_credentials": (
        "Valid Accounts: Cloud Accounts",
        "T1078.004",
        "Instance credentials used sparingly (a few calls over hours) from another AWS-hosted "
        "address with the workload's own SDK user agent, off the VPC endpoint",
    ),
    "tls_downgrade": (
        "Adversary-in-the-Middle",
        "T1557",
        "A person's calls falling from TLS 1.3 to TLS 1.0 or no TLS details, same user agent "
        "and address",
    ),
}
ACTOR_SCENARIOS: Final = (
    ("instance_thief", ("stolen_role_credentials",)),
    ("insider_code", ("kms_decrypt_burst",)),
    ("key_thief", ("recon_burst", "iam_persistence")),
    ("session_hijacker", ("logging_disabled", "queue_encryption_removed", "queue_made_public")),
    ("failed_evader", ("failed_defense_evasion",)),
    ("miner", ("crypto_mining",)),
    ("sparse_thief", ("sparse_instance_credentials",)),
    ("downgrader", ("tls_downgrade",)),
)
MINING_REGIONS: Final = ("sa-east-1", "ap-northeast-1", "ap-southeast-2")
MINING_TYPES: Final = ("p3.16xlarge", "g5.48xlarge", "p4d.24xlarge", "c5.24xlarge")
RECON_REGIONS: Final = (
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-1",
)
THIEF_AGENT: Final = (
    "Boto3/1.34.11 md/Botocore#1.34.11 ua/2.0 os/linux#6.5.0-kali3-amd64 md/arch#x86_64 "
    "lang/python#3.11.7 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.11"
)
HIJACKER_AGENT: Final = (
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0-18-cloud-amd64 exe/x86_64.debian.12 prompt/off"
)
HIJACKER_BROWSER: Final = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/121.0.0.0 Safari/537.36"
)
_ACTOR_BUDGET: Final = 4 * 3600  # an actor's scenarios all fit in this much time


@dataclass(slots=True)
class _Emitter:
    """Collects one scenario's records and remembers their ids for the label."""

    scenario: str
    records: list[TimedRecord] = field(default_factory=list)

    def add(self, t: int, record: Record) -> None:
        self.records.append((t, record))

    def label(self, index: int, principal_arn: str, account: str) -> AttackLabel:
        technique, mitre, description = TECHNIQUES[self.scenario]
        times = [t for t, _ in self.records]
        return AttackLabel(
            scenario_id=f"S{index + 1}-{self.scenario}",
            scenario=self.scenario,
            technique=technique,
            mitre_attack_id=mitre,
            principal_arn=principal_arn,
            account_id=account,
            start=datetime.fromtimestamp(min(times), UTC),
            end=datetime.fromtimestamp(max(times), UTC),
            event_ids=tuple(record["eventID"] for _, record in self.records),
            description=description,
        )


@dataclass(frozen=True, slots=True)
class _Stage:
    """What a scenario needs: the organisation, the seed and the time it starts."""

    org: Organisation
    config: SyntheticConfig
    seed: int
    start: int
    rng: Random
    attacker_ip: str


def plan_attacks(
    config: SyntheticConfig, org: Organisation, seed: int
) -> tuple[list[TimedRecord], tuple[AttackLabel, ...]]:
    """Records and labels of every configured scenario."""
    records: list[TimedRecord] = []
    labels: list[AttackLabel] = []
    wanted = set(config.scenarios)
    span = max(config.attack_days * DAY - _ACTOR_BUDGET, 3600)
    known_ips = _known_addresses(org)
    for actor, scenarios in ACTOR_SCENARIOS:
        chosen = [s for s in scenarios if s in wanted]
        if not chosen:
            continue
        rng = Random(f"{seed}/attack/{actor}")
        t = config.attack_start_epoch + rng.randrange(0, span)
        ip = _attacker_ip(rng, known_ips)
        for scenario in chosen:
            stage = _Stage(org, config, seed, t, Random(f"{seed}/attack/{scenario}"), ip)
            emitter = _Emitter(scenario)
            arn, account = SCENARIO_BUILDERS[scenario](stage, emitter)
            if max(r[0] for r in emitter.records) >= config.end_epoch:
                raise ConfigError(
                    f"scenario {scenario!r} does not fit in the attack period; use more attack_days"
                )
            labels.append(emitter.label(config.scenarios.index(scenario), arn, account))
            records.extend(emitter.records)
            t = max(r[0] for r in emitter.records) + rng.randrange(300, 1800)
    labels.sort(key=lambda label: label.scenario_id)
    return records, tuple(labels)


def _known_addresses(org: Organisation) -> set[str]:
    known: set[str] = set()
    for person in org.people:
        known.update(person.home_ips, person.office_ips, (trip.ip for trip in person.trips))
    for pipeline in org.pipelines:
        known.update(pipeline.runner_ips)
    known.update(legacy.ip for legacy in org.legacy_users)
    for scanner in org.scanners:
        known.update(scanner.ips)
    known.update(app.nat_ip for app in org.apps if app.nat_ip)
    return known


def _attacker_ip(rng: Random, known: set[str]) -> str:
    while True:
        ip = public_ipv4(rng)
        if ip not in known:
            return ip


def _call(
    stage: _Stage,
    emit: _Emitter,
    t: int,
    identity: Record,
    caller: Caller,
    resources: Resources,
    call: Call,
    *,
    region: str | None = None,
    denied: bool = False,
    request: Record | None = None,
    response: Record | None = None,
    category: str = "Management",
) -> Record:
    """One attacker call on ``resources`` (denied ones name the caller in the message)."""
    is_s3 = call.service == "s3"
    error = access_denied(call.event_source, call.event_name, identity["arn"]) if denied else None
    record = api_call(
        stage.rng,
        t,
        identity,
        caller,
        resources.account,
        region or resources.region,
        call.event_source,
        call.event_name,
        read_only=call.read_only,
        request=request if request is not None else call.request(resources, stage.rng),
        response=response,
        category=category,
        additional=s3_additional(stage.rng) if is_s3 else None,
        error=error,
        host=resources.s3_host() if is_s3 and call.event_name != "ListBuckets" else None,
    )
    emit.add(t, record)
    return record


def _c(source: str, name: str, read_only: bool = True) -> Call:
    return Call(f"{source}.amazonaws.com", name, read_only, lambda r, g: None)


# --- instance thief -------------------------------------------------------------------------


def _alive(app: App, t: int, duration: int) -> tuple[Incarnation, int] | None:
    """An incarnation running over ``[t, t + duration]`` whose credentials stay valid."""
    for timeline in app.slots:
        for incarnation in timeline:
            if incarnation.start <= t and t + duration < incarnation.end:
                issued = period_start(incarnation.start, t)
                if t + duration < issued + CREDENTIAL_PERIOD:
                    return incarnation, issued
    return None


def _find_session(stage: _Stage, app: App, duration: int) -> tuple[int, Incarnation, int]:
    t = stage.start
    for _ in range(200):
        found = _alive(app, t, duration)
        if found is not None:
            return t, found[0], found[1]
        t += 600
    raise AssertionError(f"no running instance of {app.name} found for the attack")


def _pick_app(org: Organisation, kinds: tuple[str, ...]) -> App:
    for app in org.apps:
        if app.kind in kinds:
            return app
    return org.apps[0]


def stolen_role_credentials(stage: _Stage, emit: _Emitter) -> tuple[str, str]:
    app = _pick_app(stage.org, ("ec2",))
    t, incarnation, issued = _find_session(stage, app, 3600)
    factory = role_session(
        app.role,
        incarnation.session_name,
        credential_key(stage.seed, incarnation.session_name, issued),
        issued,
        ec2_role_delivery=app.kind == "ec2",
    )
    caller = Caller(stage.attacker_ip, THIEF_AGENT)
    res = app.resources
    rng = stage.rng
    recon = (
        (_c("sts", "GetCallerIdentity"), False),
        (_c("iam", "ListAttachedRolePolicies"), True),
        (_c("iam", "GetRole"), True),
        (_c("s3", "ListBuckets"), True),
        (_c("ec2", "DescribeInstances"), True),
        (_c("secretsmanager", "ListSecrets"), True),
        (_c("lambda", "ListFunctions20150331"), True),
    )
    for call, denied in recon:
        request = {"roleName": app.role.name} if call.service == "iam" else None
        _call(stage, emit, t, factory(), caller, res, call, denied=denied, request=request)
        t += rng.randrange(1, 8)
    calls = AppCalls(app, incarnation, rng, caller=caller)  # from outside: no VPC endpoint
    secret = calls.get_secret_value(t, factory(), False)
    emit.add(t, secret)
    emit.add(t, calls.on_behalf(t, factory(), "secretsmanager.amazonaws.com", "Decrypt"))
    t += rng.randrange(5, 30)
    _call(
        stage, emit, t, factory(), caller, res, _c("sqs", "GetQueueAttributes"),
        request={"queueUrl": res.queue_url, "attributeNames": ["All"]},
    )  # fmt: skip
    for _ in range(rng.randrange(4, 8)):
        t += rng.randrange(1, 4)
        emit.add(t, calls.receive_message(t, factory(), False))
    t += rng.randrange(10, 60)
    _call(
        stage, emit, t, factory(), caller, res, _c("s3", "ListObjects"),
        request={"bucketName": res.bucket, "Host": res.s3_host(), "list-type": "2", "prefix": ""},
        category=DATA,
    )  # fmt: skip
    for _ in range(rng.randrange(25, 45)):
        t += rng.randrange(0, 4)
        emit.add(t, calls.get_object(t, factory(), False))
        if rng.random() < 0.4:
            emit.add(t, calls.decrypt(t, factory(), False))
    for _ in range(rng.randrange(2, 5)):
        t += rng.randrange(1, 10)
        _call(
            stage, emit, t, factory(), caller, res, _c("dynamodb", "Scan"),
            request={"tableName": res.table, "limit": 1000}, category=DATA,
        )  # fmt: skip
    return app.role.session_arn(incarnation.session_name), app.account


# --- insider code ---------------------------------------------------------------------------


def kms_decrypt_burst(stage: _Stage, emit: _Emitter) -> tuple[str, str]:
    app = _pick_app(stage.org, ("ecs", "lambda"))
    duration = 15 * 60
    t, incarnation, issued = _find_session(stage, app, duration)
    calls = AppCalls(app, incarnation, stage.rng)
    factory = role_session(
        app.role,
        incarnation.session_name,
        credential_key(stage.seed, incarnation.session_name, issued),
        issued,
        ec2_role_delivery=app.kind == "ec2",
    )
    # Decrypt is about a third of the role's calls (all its instances together); the burst is
    # ~60x that rate, and never under 30 a minute (a bulk decryption job, not a busy hour).
    instances = len(app.slots)
    usual_per_minute = stage.config.app_calls_per_instance_hour / 60 * 0.3 * instances
    per_minute = max(30.0, 60 * usual_per_minute)
    # Whole seconds can hold many calls: draw the count, then spread it over the window.
    count = round(per_minute * duration / 60 * stage.rng.uniform(0.9, 1.1))
    for at in sorted(t + stage.rng.randrange(duration) for _ in range(count)):
        emit.add(at, calls.decrypt(at, factory(), False))
    return app.role.session_arn(incarnation.session_name), app.account


# --- key thief ------------------------------------------------------------------------------


def _thief_user(org: Organisation) -> IamUser:
    return org.legacy_users[0].user


def recon_burst(stage: _Stage, emit: _Emitter) -> tuple[str, str]:
    user = _thief_user(stage.org)
    caller = Caller(stage.attacker_ip, THIEF_AGENT)
    rng = stage.rng
    t = stage.start
    for call in RECON:
        regional = call.service not in {"iam", "sts", "organizations", "route53", "ce", "s3"}
        regions = RECON_REGIONS if regional else ("us-east-1",)
        for region in regions:
            resources = stage.org.account_resources(user.account_id, region)
            # The key can read IAM (that is why it is worth stealing); most else is denied.
            allowed = call.service in {"sts", "iam"} or rng.random() < 0.15
            _call(
                stage,
                emit,
                t,
                iam_user(user),
                caller,
                resources,
                call,
                region=region,
                denied=not allowed,
            )
            t += rng.choice((0, 0, 1, 1, 2))
    return user.arn, user.account_id


def iam_persistence(stage: _Stage, emit: _Emitter) -> tuple[str, str]:
    org = stage.org
    user = _thief_user(org)
    account = user.account_id
    caller = Caller(stage.attacker_ip, THIEF_AGENT)
    rng = stage.rng
    resources = org.account_resources(account, "us-east-1")
    backdoor = f"svc-monitoring-{hex_string(rng, 4)}"
    backdoor_user = IamUser(account, backdoor, aws_id(rng, "AIDA", 17), aws_id(rng, "AKIA"))
    t = stage.start
    created = sts_time(t)
    steps: list[tuple[Call, Record, Record | None]] = [
        (_c("iam", "CreateUser", False), {"userName": backdoor}, {
            "user": {"path": "/", "userName": backdoor, "userId": backdoor_user.user_id,
                     "arn": backdoor_user.arn, "createDate": created}}),
        (_c("iam", "AttachUserPolicy", False),
         {"userName": backdoor, "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}, None),
        (_c("iam", "CreateAccessKey", False), {"userName": backdoor}, {
            "accessKey": {"userName": backdoor, "accessKeyId": backdoor_user.access_key_id,
                          "status": "Active", "createDate": created}}),
        (_c("iam", "CreateLoginProfile", False), {"userName": backdoor, "passwordResetRequired": False},
         {"loginProfile": {"userName": backdoor, "createDate": created, "passwordResetRequired": False}}),
    ]  # fmt: skip
    other = _other_user(org, user)
    if other is not None:
        steps.append(
            (_c("iam", "CreateAccessKey", False), {"userName": other}, {
                "accessKey": {"userName": other, "accessKeyId": aws_id(rng, "AKIA"),
                              "status": "Active", "createDate": created}})
        )  # fmt: skip
    role = _role_to_backdoor(org, account)
    outside = f"{rng.randrange(10**11, 10**12):012d}"
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{outside}:root"}, "Action": "sts:AssumeRole"},
        ],
    }  # fmt: skip
    steps.append(
        (_c("iam", "UpdateAssumeRolePolicy", False),
         {"roleName": role, "policyDocument": orjson.dumps(trust, option=orjson.OPT_INDENT_2).decode()},
         None)
    )  # fmt: skip
    for call, request, response in steps:
        _call(
            stage,
            emit,
            t,
            iam_user(user),
            caller,
            resources,
            call,
            request=request,
            response=response,
        )
        t += rng.randrange(2, 20)
    # The attacker tries the new console password straight away.
    t += rng.randrange(30, 120)
    login = console_login(
        rng, t, iam_user(backdoor_user, access_key=False), Caller(stage.attacker_ip, HIJACKER_BROWSER),
        account, mfa_used=False,
    )  # fmt: skip
    emit.add(t, login)
    return user.arn, account


def _other_user(org: Organisation, thief: IamUser) -> str | None:
    for legacy in org.legacy_users:
        if legacy.user.name != thief.name:
            return legacy.user.name
    return None


def _role_to_backdoor(org: Organisation, account: str) -> str:
    for app in org.apps:
        if app.account == account:
            return app.role.name
    for pipeline in org.pipelines:
        if pipeline.role.account_id == account:
            return pipeline.role.name
    return "OrganizationAccountAccessRole"


# --- session hijacker -----------------------------------------------------------------------


def _hijacked(stage: _Stage, account: str) -> tuple[Person, IdentityFactory, str]:
    """A new session of the first administrator, in ``account``."""
    person = stage.org.people[0]
    assignment = next(
        (a for a in person.assignments if a.role.account_id == account), person.assignments[0]
    )
    created = stage.start - stage.rng.randrange(60, 600)
    factory = role_session(assignment.role, person.email, aws_id(stage.rng, "ASIA"), created)
    return person, factory, assignment.role.session_arn(person.email)


def _hijacker_caller(stage: _Stage, command: str) -> Caller:
    return Caller(stage.attacker_ip, f"{HIJACKER_AGENT} command/{command}")


def _target_workload(org: Organisation) -> str:
    return org.workloads[-1].account_id


def logging_disabled(stage: _Stage, emit: _Emitter) -> tuple[str, str]:
    org = stage.org
    account = _target_workload(org)
    region = stage.config.regions[0]
    _, factory, arn = _hijacked(stage, account)
    resources = org.account_resources(account, region)
    trail = f"arn:aws:cloudtrail:{region}:{account}:trail/{account}-audit"
    reduced = [{"readWriteType": "WriteOnly", "includeManagementEvents": False,
                "dataResources": [], "excludeManagementEventSources": []}]  # fmt: skip
    steps: list[tuple[Call, str, Record | None, Record | None]] = [
        (_c("cloudtrail", "DescribeTrails"), "describe-trails", {"includeShadowTrails": False}, None),
        (_c("cloudtrail", "GetTrailStatus"), "get-trail-status", {"name": trail}, None),
        (_c("cloudtrail", "GetEventSelectors"), "get-event-selectors", {"trailName": trail}, None),
        (_c("cloudtrail", "PutEventSelectors", False), "put-event-selectors",
         {"trailName": trail, "eventSelectors": reduced}, {"trailARN": trail, "eventSelectors": reduced}),
        (_c("cloudtrail", "StopLogging", False), "stop-logging", {"name": trail}, None),
        (_c("cloudtrail", "DeleteTrail", False), "delete-trail", {"name": trail}, None),
    ]  # fmt: skip
    t = stage.start
    for call, command, request, response in steps:
        caller = _hijacker_caller(stage, f"cloudtrail.{command}")
        _call(
            stage, emit, t, factory(), caller, resources, call, request=request, response=response
        )
        t += stage.rng.randrange(3, 40)
    for detector_region in stage.config.regions:
        regional = org.account_resources(account, detector_region)
        detector = hex_string(stage.rng, 32)
        caller = _hijacker_caller(stage, "guardduty.list-detectors")
        _call(
            stage,
            emit,
            t,
            factory(),
            caller,
            regional,
            _c("guardduty", "ListDetectors"),
            request={},
        )
        t += stage.rng.randrange(2, 10)
        caller = _hijacker_caller(stage, "guardduty.delete-detector")
        _call(
            stage, emit, t, factory(), caller, regional, _c("guardduty", "DeleteDetector", False),
            request={"detectorId": detector},
        )  # fmt: skip
        t += stage.rng.randrange(2, 10)
    return arn, account


def _target_queue(org: Organisation) -> Resources:
    account = _target_workload(org)
    for app in org.apps:
        if app.account == account:
            return app.resources
    return org.apps[0].resources if org.apps else org.account_resources(account, org.regions[0])


def queue_encryption_removed(stage: _Stage, emit: _Emitter) -> tuple[str, str]:
    res = _target_queue(stage.org)
    _, factory, arn = _hijacked(stage, res.account)
    t = stage.start
    steps: list[tuple[str, Record]] = [
        ("ListQueues", {}),
        ("GetQueueAttributes", {"queueUrl": res.queue_url, "attributeNames": ["All"]}),
        ("SetQueueAttributes", {"queueUrl": res.queue_url, "attributes": {"KmsMasterKeyId": ""}}),
        ("SetQueueAttributes", {"queueUrl": res.queue_url, "attributes": {"SqsManagedSseEnabled": "false"}}),
    ]  # fmt: skip
    for name, request in steps:
        call = _c("sqs", name, name.startswith(("List", "Get")))
        caller = _hijacker_caller(stage, f"sqs.{kebab(name)}")
        _call(stage, emit, t, factory(), caller, res, call, request=request)
        t += stage.rng.randrange(3, 30)
    return arn, res.account


def queue_made_public(stage: _Stage, emit: _Emitter) -> tuple[str, str]:
    res = _target_queue(stage.org)
    _, factory, arn = _hijacked(stage, res.account)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "public", "Effect": "Allow", "Principal": "*", "Action": "sqs:*",
                       "Resource": res.queue_arn}],
    }  # fmt: skip
    t = stage.start
    steps: list[tuple[str, Record]] = [
        ("GetQueueAttributes", {"queueUrl": res.queue_url, "attributeNames": ["Policy"]}),
        ("SetQueueAttributes", {"queueUrl": res.queue_url, "attributes": {"Policy": orjson.dumps(policy).decode()}}),
    ]  # fmt: skip
    for name, request in steps:
        call = _c("sqs", name, name.startswith("Get"))
        caller = _hijacker_caller(stage, f"sqs.{kebab(name)}")
        _call(stage, emit, t, factory(), caller, res, call, request=request)
        t += stage.rng.randrange(3, 30)
    return arn, res.account


# --- what an independent organisation showed us missing (issue 14) ----------------------------


def failed_defense_evasion(stage: _Stage, emit: _Emitter) -> tuple[str, str]:
    org = stage.org
    scripts = [legacy for legacy in org.legacy_users if legacy.kind == "script"]
    user = (scripts[-1] if scripts else org.legacy_users[0]).user
    region = stage.config.regions[0]
    resources = org.account_resources(user.account_id, region)
    trail = f"arn:aws:cloudtrail:{region}:{user.account_id}:trail/{org.trail_name}"
    detector = hex_string(stage.rng, 32)
    caller = Caller(stage.attacker_ip, THIEF_AGENT)
    steps: list[tuple[Call, bool, Record | None]] = [
        (_c("sts", "GetCallerIdentity"), False, None),
        (_c("cloudtrail", "StopLogging", False), True, {"name": trail}),
        (_c("cloudtrail", "DeleteTrail", False), True, {"name": trail}),
        (_c("guardduty", "ListDetectors"), True, {}),
        (_c("guardduty", "UpdateDetector", False), True, {"detectorId": detector, "enable": False}),
        (_c("guardduty", "DeleteDetector", False), True, {"detectorId": detector}),
    ]
    t = stage.start
    for call, denied, request in steps:
        _call(
            stage, emit, t, iam_user(user), caller, resources, call, denied=denied, request=request
        )
        t += stage.rng.randrange(2, 20)
    return user.arn, user.account_id


def crypto_mining(stage: _Stage, emit: _Emitter) -> tuple[str, str]:
    pipeline = stage.org.pipelines[0]
    role = pipeline.role
    rng = stage.rng
    factory = role_session(
        role,
        "GitHubActions",
        aws_id(rng, "ASIA"),
        stage.start - 60,
        web_identity_provider=f"arn:aws:iam::{role.account_id}:oidc-provider/"
        "token.actions.githubusercontent.com",
    )
    region = next(r for r in MINING_REGIONS if r not in stage.config.regions)
    resources = stage.org.account_resources(role.account_id, region)
    caller = Caller(rng.choice(pipeline.runner_ips), HIJACKER_AGENT)
    t = stage.start
    for name in ("DescribeRegions", "DescribeImages", "DescribeInstanceTypeOfferings"):
        _call(stage, emit, t, factory(), caller, resources, _c("ec2", name), region=region)
        t += rng.randrange(1, 10)
    for _ in range(rng.randrange(30, 50)):
        count = rng.randrange(1, 5)
        kind = rng.choice(MINING_TYPES)
        request = {
            "instancesSet": {"items": [{"imageId": "ami-0" + hex_string(rng, 16),
                                        "minCount": count, "maxCount": count}]},
            "instanceType": kind,
        }  # fmt: skip
        response = {
            "instancesSet": {"items": [{"instanceId": "i-0" + hex_string(rng, 16),
                                        "instanceType": kind} for _ in range(count)]},
        }  # fmt: skip
        _call(
            stage, emit, t, factory(), caller, resources, _c("ec2", "RunInstances", False),
            region=region, request=request, response=response,
        )  # fmt: skip
        t += rng.randrange(2, 30)
    return role.session_arn("GitHubActions"), role.account_id


def _aws_hosted_ip(rng: Random) -> str:
    first = rng.choice((3, 18, 34, 35, 52, 54))
    return f"{first}.{rng.randrange(0, 256)}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"


def sparse_instance_credentials(stage: _Stage, emit: _Emitter) -> tuple[str, str]:
    ec2 = [app for app in stage.org.apps if app.kind == "ec2"]
    app = ec2[1] if len(ec2) > 1 else _pick_app(stage.org, ("ec2", "ecs"))
    t, incarnation, issued = _find_session(stage, app, 5 * 3600 + 900)
    factory = role_session(
        app.role,
        incarnation.session_name,
        credential_key(stage.seed, incarnation.session_name, issued),
        issued,
        ec2_role_delivery=app.kind == "ec2",
    )
    rng = stage.rng
    caller = Caller(_aws_hosted_ip(rng), app.agent)  # the workload's own SDK, no endpoint
    calls = AppCalls(app, incarnation, rng, caller=caller)
    res = app.resources
    _call(stage, emit, t, factory(), caller, res, _c("sts", "GetCallerIdentity"))
    for step in range(5):
        t += rng.randrange(40 * 60, 60 * 60)
        if step == 0:
            _call(stage, emit, t, factory(), caller, res, _c("s3", "ListBuckets"))
        elif step == 3:
            secret = calls.get_secret_value(t, factory(), False)
            emit.add(t, secret)
        else:
            emit.add(t, calls.get_object(t, factory(), False))
    return app.role.session_arn(incarnation.session_name), app.account


def tls_downgrade(stage: _Stage, emit: _Emitter) -> tuple[str, str]:
    person = stage.org.people[min(1, len(stage.org.people) - 1)]
    assignment = person.assignments[-1]
    role = assignment.role
    rng = stage.rng
    factory = role_session(role, person.email, aws_id(rng, "ASIA"), stage.start - 120)
    ip = person.home_ips[0]
    resources = stage.org.account_resources(role.account_id, stage.config.regions[0])
    t = stage.start
    services = [s for s in person.services if s in READS] or ["ec2"]
    for i in range(rng.randrange(20, 40)):
        call = rng.choice(READS[rng.choice(services)])
        caller = Caller(ip, person.cli_agent, tls=i % 2 == 0, tls10=True)
        region = GLOBAL_REGION if call.service == "iam" else None
        _call(stage, emit, t, factory(), caller, resources, call, region=region)
        t += rng.randrange(5, 120)
    return role.session_arn(person.email), role.account_id


SCENARIO_BUILDERS: Final[dict[str, Callable[[_Stage, _Emitter], tuple[str, str]]]] = {
    "stolen_role_credentials": stolen_role_credentials,
    "kms_decrypt_burst": kms_decrypt_burst,
    "recon_burst": recon_burst,
    "iam_persistence": iam_persistence,
    "logging_disabled": logging_disabled,
    "queue_encryption_removed": queue_encryption_removed,
    "queue_made_public": queue_made_public,
    "failed_defense_evasion": failed_defense_evasion,
    "crypto_mining": crypto_mining,
    "sparse_instance_credentials": sparse_instance_credentials,
    "tls_downgrade": tls_downgrade,
}
