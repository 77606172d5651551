"""People at work: IAM Identity Center users in the console and the CLI.

Each person works in their own time zone, mostly on weekdays and in office hours, from home or
an office (a few addresses each), and sometimes from a trip abroad (a new address for a day or
two: normal noise the detector has to tolerate). A working day starts with an Identity Center
sign-in with MFA in the management account; console sessions then show a federated
``ConsoleLogin`` into the chosen account. Inside a session a person mostly reads (bursts of
Describe/List/Get per page or command), sometimes changes something, and now and then is
denied. Administrators sometimes hop into another account's ``OrganizationAccountAccessRole``
with their e-mail as ``sourceIdentity``.

Imports: the standard library and this package's catalog, context, formats, identity,
organisation and record modules.
"""

from __future__ import annotations

from random import Random
from typing import Final

from detector.synthetic._catalog import READS, WRITES, Call, Resources
from detector.synthetic._context import DayContext, weekday_of
from detector.synthetic._formats import (
    DAY,
    aws_id,
    derived_aws_id,
    derived_hex,
    hex_string,
    iso_time,
    kebab,
    sts_time,
    uuid4,
)
from detector.synthetic._identity import IdentityFactory, Record, Role, role_session
from detector.synthetic._org import Person, SsoAssignment
from detector.synthetic._records import (
    AWS_INTERNAL,
    MANAGEMENT,
    Caller,
    TimedRecord,
    access_denied,
    api_call,
    console_login,
    role_resource,
    s3_additional,
    throttled,
)

_WORKDAY_PROBABILITY: Final = 0.92
_WEEKEND_PROBABILITY: Final = 0.08
_CLI_SERVICE_NAMES: Final = {"monitoring": "cloudwatch", "lambda": "lambda"}
_SIGN_IN_AGENT_SHARE: Final = 0.12  # console calls AWS makes internally ("AWS Internal")
_CHAIN_SHARE: Final = 0.2  # admin CLI sessions that assume a role in another account
ADMIN_ROLE: Final = "OrganizationAccountAccessRole"


def people_day(ctx: DayContext, person_index: int) -> list[TimedRecord]:
    """Records of one person's sessions that start on this UTC day."""
    person = ctx.org.people[person_index]
    out: list[TimedRecord] = []
    for local_day in (ctx.day - 1, ctx.day, ctx.day + 1):
        if 0 <= local_day < ctx.config.days:
            _local_day(ctx, person_index, person, local_day, out)
    return out


def _local_day(
    ctx: DayContext, index: int, person: Person, local_day: int, out: list[TimedRecord]
) -> None:
    rng = Random(f"{ctx.seed}/person/{index}/{local_day}")
    midnight = ctx.config.start_epoch + local_day * DAY - person.utc_offset
    weekend = weekday_of(ctx.config.start_epoch + local_day * DAY) >= 5
    if rng.random() > (_WEEKEND_PROBABILITY if weekend else _WORKDAY_PROBABILITY):
        return
    sessions = max(1, round(rng.gauss(person.sessions_per_day, 0.7)))
    starts = sorted(midnight + _session_start(rng) for _ in range(sessions))
    ip = _address(rng, person, local_day, weekend)
    end = min(ctx.end, ctx.config.end_epoch)
    for number, start in enumerate(starts):
        session_rng = Random(f"{ctx.seed}/person/{index}/{local_day}/{number}")
        if not ctx.start <= start < end:
            continue
        if number == 0:
            sign_in = max(ctx.start, start - 40)
            out.extend(_identity_center_sign_in(ctx, person, sign_in, ip, session_rng))
        _session(ctx, person, start, ip, session_rng, out)


def _session_start(rng: Random) -> int:
    if rng.random() < 0.06:  # the odd evening check
        return rng.randrange(19 * 3600, 23 * 3600)
    return rng.randrange(8 * 3600 + 1800, 18 * 3600)


def _address(rng: Random, person: Person, day: int, weekend: bool) -> str:
    trip = person.trip_on(day)
    if trip is not None:
        return trip.ip
    if person.office_ips and not weekend and rng.random() < 0.6:
        return rng.choice(person.office_ips)
    return rng.choice(person.home_ips)


def _identity_center_sign_in(
    ctx: DayContext, person: Person, t: int, ip: str, rng: Random
) -> list[TimedRecord]:
    """Password, then MFA, then a successful authentication at the Identity Center portal."""
    account = ctx.org.management.account_id
    region = ctx.config.regions[0]
    workflow = uuid4(rng)
    user_id = f"{derived_hex(10, ctx.org.org_id, 'idc')}-{derived_hex(8, person.email)}"
    steps = (
        ("CredentialChallenge", "PASSWORD", {"CredentialChallenge": "Success"}),
        (
            "CredentialChallenge",
            rng.choice(("WEBAUTHN", "TOTP")),
            {"CredentialChallenge": "Success"},
        ),
        ("UserAuthentication", "PASSWORD,MFA", {"UserAuthentication": "Success"}),
    )
    out: list[TimedRecord] = []
    for offset, (name, credential, details) in enumerate(steps):
        at = t + offset * 6
        record: Record = {
            "eventVersion": "1.08",
            "userIdentity": {
                "type": "Unknown",
                "principalId": user_id,
                "arn": "",
                "accountId": account,
                "accessKeyId": "",
                "userName": person.email,
            },
            "eventTime": iso_time(at),
            "eventSource": "signin.amazonaws.com",
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": ip,
            "userAgent": person.browser_agent,
            "requestParameters": None,
            "responseElements": None,
            "additionalEventData": {"AuthWorkflowID": workflow, "CredentialType": credential},
            "requestID": uuid4(rng),
            "eventID": uuid4(rng),
            "readOnly": False,
            "eventType": "AwsServiceEvent",
            "managementEvent": True,
            "recipientAccountId": account,
            "serviceEventDetails": dict(details),
            "eventCategory": MANAGEMENT,
        }
        out.append((at, record))
    return out


def _session(
    ctx: DayContext, person: Person, start: int, ip: str, rng: Random, out: list[TimedRecord]
) -> None:
    assignment = _pick_assignment(rng, person)
    account = assignment.role.account_id
    console = rng.random() < person.console_share
    identity = role_session(assignment.role, person.email, aws_id(rng, "ASIA"), start)
    if console:
        login = console_login(
            rng, start, identity(), Caller(ip, person.browser_agent), account, mfa_used=False
        )
        out.append((start, login))
    t = start + rng.randrange(2, 20)
    stop = start + rng.randrange(10 * 60, 120 * 60)
    resources = _resources_of(ctx, account, rng)
    arn = assignment.role.session_arn(person.email)
    if _chains(rng, ctx, assignment, console):
        # Admins sometimes hop into another account's admin role, naming themselves as the
        # source identity, and work there.
        identity, resources, arn = _assume_admin_role(
            ctx, person, assignment, identity, t, ip, rng, out
        )
        t += rng.randrange(1, 5)
    while t < stop:
        call = _pick_call(rng, person, assignment)
        burst = rng.randrange(1, 7) if console else rng.choice((1, 1, 2))
        for _ in range(burst):
            caller = _caller(rng, person, ip, call, console)
            error = _error(rng, ctx, call, assignment, arn)
            record = _call_record(rng, t, identity(), caller, resources, call, error)
            out.append((t, record))
            t += rng.choice((0, 0, 1, 1, 2))
            call = _pick_call(rng, person, assignment)
        t += int(rng.expovariate(1 / 45)) + 1


def _chains(rng: Random, ctx: DayContext, assignment: SsoAssignment, console: bool) -> bool:
    admin = assignment.permission_set == "AdministratorAccess"
    return admin and not console and len(ctx.org.accounts) > 1 and rng.random() < _CHAIN_SHARE


def _assume_admin_role(
    ctx: DayContext,
    person: Person,
    assignment: SsoAssignment,
    identity: IdentityFactory,
    t: int,
    ip: str,
    rng: Random,
    out: list[TimedRecord],
) -> tuple[IdentityFactory, Resources, str]:
    """``sts:AssumeRole`` into ``OrganizationAccountAccessRole`` with ``SourceIdentity``."""
    here = assignment.role.account_id
    target = rng.choice([a.account_id for a in ctx.org.accounts if a.account_id != here])
    role_id = derived_aws_id("AROA", ctx.org.org_id, target, ADMIN_ROLE, length=17)
    role = Role(target, ADMIN_ROLE, role_id)
    key = aws_id(rng, "ASIA")
    session = person.email
    caller = Caller(ip, f"{person.cli_agent} command/sts.assume-role")
    record = api_call(
        rng, t, identity(), caller, here, ctx.config.regions[0], "sts.amazonaws.com", "AssumeRole",
        read_only=True,
        request={"roleArn": role.arn, "roleSessionName": session, "sourceIdentity": session,
                 "durationSeconds": 3600},
        response={
            "credentials": {"accessKeyId": key, "sessionToken": "IQoJb3JpZ2luX2VjE" + hex_string(rng, 48),
                            "expiration": sts_time(t + 3600)},
            "assumedRoleUser": {"assumedRoleId": f"{role_id}:{session}", "arn": role.session_arn(session)},
            "sourceIdentity": session,
        },
        resources=role_resource(role.arn, target),
        shared_event_id=uuid4(rng),
    )  # fmt: skip
    out.append((t, record))
    factory = role_session(role, session, key, t, source_identity=session)
    return factory, _resources_of(ctx, target, rng), role.session_arn(session)


def _pick_assignment(rng: Random, person: Person) -> SsoAssignment:
    weights = [1.0 / (rank + 1) for rank in range(len(person.assignments))]
    if (
        len(person.assignments) > 1
        and person.assignments[0].permission_set == "AdministratorAccess"
    ):
        weights[0] = 0.3  # admins spend most time in workload accounts
    return rng.choices(person.assignments, weights=weights)[0]


def _resources_of(ctx: DayContext, account: str, rng: Random) -> Resources:
    apps = [app for app in ctx.org.apps if app.account == account]
    if apps:
        return rng.choice(apps).resources
    return ctx.org.account_resources(account, ctx.config.regions[0])


def _pick_call(rng: Random, person: Person, assignment: SsoAssignment) -> Call:
    service = rng.choice(person.services)
    if assignment.permission_set != "ReadOnlyAccess" and rng.random() < 0.05:
        writable = [s for s in person.services if s in WRITES] or list(WRITES)
        return rng.choice(WRITES[rng.choice(writable)])
    return rng.choice(READS[service])


def _caller(rng: Random, person: Person, ip: str, call: Call, console: bool) -> Caller:
    if not console:
        service = _CLI_SERVICE_NAMES.get(call.service, call.service)
        agent = f"{person.cli_agent} command/{service}.{kebab(call.event_name)}"
        return Caller(ip, agent)
    if rng.random() < _SIGN_IN_AGENT_SHARE:
        return Caller(AWS_INTERNAL, AWS_INTERNAL, console=True, tls=False)
    return Caller(ip, person.browser_agent, console=True)


def _error(
    rng: Random, ctx: DayContext, call: Call, assignment: SsoAssignment, arn: str
) -> tuple[str, str] | None:
    roll = rng.random()
    denied_rate = ctx.config.error_rate * (
        3.0 if assignment.permission_set == "ReadOnlyAccess" else 1.5
    )
    if roll < denied_rate:
        return access_denied(call.event_source, call.event_name, arn)
    if roll < denied_rate + ctx.config.error_rate * 0.3:
        return throttled(call.event_source)
    return None


def _call_record(
    rng: Random,
    t: int,
    identity: Record,
    caller: Caller,
    resources: Resources,
    call: Call,
    error: tuple[str, str] | None,
) -> Record:
    is_s3 = call.service == "s3"
    host = None
    if is_s3:
        bucket_level = call.event_name != "ListBuckets"
        host = resources.s3_host() if bucket_level else f"s3.{resources.region}.amazonaws.com"
    return api_call(
        rng,
        t,
        identity,
        caller,
        resources.account,
        resources.region,
        call.event_source,
        call.event_name,
        read_only=call.read_only,
        request=call.request(resources, rng),
        additional=s3_additional(rng) if is_s3 else None,
        error=error,
        host=host,
    )
