"""Legacy IAM users: scripts with long-lived access keys, and a break-glass human.

Scripts run at fixed UTC hours from one fixed address with one user agent and make the same
short sequence of calls every time: the most regular principals in the trail. The break-glass
user signs in to the console with MFA now and then (sometimes after a mistyped password) and
looks around IAM and Organizations.

Imports: the standard library and this package's catalog, context, formats, identity,
organisation and record modules.
"""

from __future__ import annotations

from random import Random
from typing import Final

from detector.synthetic._catalog import READS, Call, Resources
from detector.synthetic._catalog import make_call as call_of
from detector.synthetic._context import DayContext
from detector.synthetic._formats import aws_id
from detector.synthetic._identity import (
    Record,
    failed_sign_in_user,
    iam_user,
    iam_user_console,
)
from detector.synthetic._org import LegacyUser
from detector.synthetic._records import (
    DATA,
    Caller,
    TimedRecord,
    api_call,
    console_login,
    s3_additional,
    throttled,
)

_PUT_REPORT: Final = call_of(
    "s3",
    "PutObject",
    lambda r, g: {
        "bucketName": r.bucket,
        "Host": r.s3_host(),
        "key": f"reports/{g.randrange(10**5)}.csv",
    },
    read_only=False,
)
_JOBS: Final[dict[str, tuple[Call, ...]]] = {
    "legacy-deployer": (
        call_of("sts", "GetCallerIdentity"),
        call_of("cloudformation", "DescribeStacks", lambda r, g: {"stackName": f"{r.name}-stack"}),
        call_of("cloudformation", "ValidateTemplate"),
        call_of("cloudformation", "DescribeStackEvents", lambda r, g: {"stackName": f"{r.name}-stack"}),
        call_of("iam", "GetRole", lambda r, g: {"roleName": r.role_name}),
        call_of("s3", "GetBucketLocation", lambda r, g: {"bucketName": r.bucket, "Host": r.s3_host(), "location": ""}),
    ),
    "reporting-export": (
        call_of("sts", "GetCallerIdentity"),
        call_of("ce", "GetCostAndUsage", lambda r, g: {"granularity": "DAILY", "metrics": ["UnblendedCost"]}),
        call_of("ce", "GetCostAndUsage", lambda r, g: {"granularity": "MONTHLY", "metrics": ["UnblendedCost"]}),
        call_of("organizations", "ListAccounts"),
        _PUT_REPORT,
    ),
}  # fmt: skip
_DEFAULT_JOB: Final = (
    call_of("sts", "GetCallerIdentity"),
    call_of("s3", "ListBuckets", lambda r, g: {"Host": f"s3.{r.region}.amazonaws.com"}),
    call_of("s3", "GetBucketLocation", lambda r, g: {"bucketName": r.bucket, "Host": r.s3_host(), "location": ""}),
)  # fmt: skip
_BREAKGLASS_READS: Final = READS["iam"] + READS["ec2"][:2] + (
    call_of("organizations", "DescribeOrganization"),
    call_of("organizations", "ListAccounts"),
)  # fmt: skip
_BREAKGLASS_DAILY_PROBABILITY: Final = 0.08
_CONSOLE_DAILY_PROBABILITY: Final = 0.9


def legacy_day(ctx: DayContext, index: int) -> list[TimedRecord]:
    legacy = ctx.org.legacy_users[index]
    rng = ctx.rng("legacy", index)
    out: list[TimedRecord] = []
    if legacy.weekdays_only and ctx.is_weekend:
        return out
    if legacy.kind == "console":
        # Signs in every working day, never with MFA: legacy practice, not an attack.
        if rng.random() < _CONSOLE_DAILY_PROBABILITY:
            start = ctx.start + legacy.run_hours[0] * 3600 + rng.randrange(0, 3600)
            _console_visit(ctx, legacy, start, rng, out, mfa=False)
        return out
    if legacy.kind == "human":
        if rng.random() < _BREAKGLASS_DAILY_PROBABILITY:
            _console_visit(ctx, legacy, ctx.start + rng.randrange(9 * 3600, 17 * 3600), rng, out)
        return out
    for hour in legacy.run_hours:
        _job(ctx, legacy, ctx.start + hour * 3600 + rng.randrange(0, 600), rng, out)
    return out


def _resources(ctx: DayContext, legacy: LegacyUser) -> Resources:
    account = legacy.user.account_id
    return ctx.org.account_resources(account, ctx.config.regions[0])


def _job(ctx: DayContext, legacy: LegacyUser, t: int, rng: Random, out: list[TimedRecord]) -> None:
    base = legacy.user.name.rsplit("-", 1)[0] if legacy.user.name not in _JOBS else legacy.user.name
    calls = _JOBS.get(base, _DEFAULT_JOB)
    caller = Caller(legacy.ip, legacy.agent, tls12=legacy.agent.startswith("aws-cli/1"))
    resources = _resources(ctx, legacy)
    for call in calls:
        failed = rng.random() < ctx.config.error_rate
        record = _record(rng, t, iam_user(legacy.user), caller, resources, call, failed)
        out.append((t, record))
        t += rng.randrange(0, 3)


def _record(
    rng: Random,
    t: int,
    identity: Record,
    caller: Caller,
    resources: Resources,
    call: Call,
    failed: bool,
) -> Record:
    is_s3 = call.service == "s3"
    data = call.event_name == "PutObject"
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
        category=DATA if data else "Management",
        additional=s3_additional(rng) if is_s3 else None,
        error=throttled(call.event_source) if failed else None,
        host=resources.s3_host() if is_s3 and call.event_name != "ListBuckets" else None,
    )


def _console_visit(
    ctx: DayContext,
    legacy: LegacyUser,
    t: int,
    rng: Random,
    out: list[TimedRecord],
    *,
    mfa: bool = True,
) -> None:
    user = legacy.user
    account = user.account_id
    caller = Caller(legacy.ip, legacy.agent)
    if rng.random() < 0.2:  # a mistyped password first
        failed = console_login(
            rng, t, failed_sign_in_user(user), caller, account, mfa_used=False, success=False
        )
        out.append((t, failed))
        t += rng.randrange(10, 40)
    login = console_login(
        rng, t, iam_user(user, access_key=False), caller, account,
        mfa_used=mfa, mfa_identifier=legacy.mfa_serial if mfa else None,
    )  # fmt: skip
    out.append((t, login))
    key, signed_in = aws_id(rng, "ASIA"), t
    resources = _resources(ctx, legacy)
    console = Caller(legacy.ip, legacy.agent, console=True)
    for _ in range(rng.randrange(8, 30)):
        t += rng.randrange(1, 60)
        call = rng.choice(_BREAKGLASS_READS)
        identity = iam_user_console(user, key, signed_in)
        out.append((t, _record(rng, t, identity, console, resources, call, False)))
