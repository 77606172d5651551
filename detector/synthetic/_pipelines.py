"""CI/CD: GitHub Actions deploying through an OIDC role with Terraform.

A run exchanges the job's OIDC token for role credentials (``AssumeRoleWithWebIdentity`` from
a runner's address), refreshes the application's resources (``terraform plan``: dozens of
reads within a minute or two, the odd throttle) and, on some runs, applies a change. Runs come
in bursts on weekdays, from a small set of runner addresses.

Imports: the standard library and this package's catalog, context, formats, identity,
organisation and record modules.
"""

from __future__ import annotations

from random import Random
from typing import Final

from detector.synthetic._catalog import (
    TERRAFORM_APPLY,
    TERRAFORM_PLAN,
    TERRAFORM_SHARED_APPLY,
    Call,
    Resources,
)
from detector.synthetic._context import DayContext
from detector.synthetic._formats import aws_id, hex_string, sts_time
from detector.synthetic._identity import (
    IdentityFactory,
    Record,
    oidc_provider_arn,
    role_session,
    web_identity_user,
)
from detector.synthetic._org import CREDENTIALS_ACTION_AGENT, TERRAFORM_AGENT, CiPipeline
from detector.synthetic._records import (
    Caller,
    TimedRecord,
    api_call,
    role_resource,
    s3_additional,
    throttled,
)

SESSION_NAME: Final = "GitHubActions"
_AUDIENCE: Final = "sts.amazonaws.com"
_APPLY_SHARE: Final = 0.4
_WEEKEND_FACTOR: Final = 0.05


def pipeline_day(ctx: DayContext, index: int) -> list[TimedRecord]:
    """All runs of one pipeline on one day."""
    pipeline = ctx.org.pipelines[index]
    if ctx.day < pipeline.first_day:
        return []
    rng = ctx.rng("pipeline", index)
    expected = pipeline.runs_per_weekday * (_WEEKEND_FACTOR if ctx.is_weekend else 1.0)
    runs = _poisson(rng, expected)
    out: list[TimedRecord] = []
    end = min(ctx.end, ctx.config.end_epoch)
    for run in range(runs):
        start = ctx.start + rng.randrange(7 * 3600, 20 * 3600)
        if start < end:
            _run(ctx, pipeline, start, Random(f"{ctx.seed}/{ctx.day}/run/{index}/{run}"), out)
    return out


def _poisson(rng: Random, mean: float) -> int:
    # Knuth's method: means here are small.
    limit, count, product = 2.718281828459045**-mean, 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _run(
    ctx: DayContext, pipeline: CiPipeline, start: int, rng: Random, out: list[TimedRecord]
) -> None:
    ip = rng.choice(pipeline.runner_ips)
    key = aws_id(rng, "ASIA")
    out.append((start, _assume(pipeline, start, ip, key, rng)))
    identity = role_session(
        pipeline.role,
        SESSION_NAME,
        key,
        start,
        web_identity_provider=oidc_provider_arn(pipeline.role.account_id),
    )
    resources = (
        ctx.org.apps[pipeline.app_index].resources
        if pipeline.app_index >= 0
        else ctx.org.account_resources(pipeline.role.account_id, ctx.config.regions[0])
    )
    kind = ctx.org.apps[pipeline.app_index].kind if pipeline.app_index >= 0 else "lambda"
    t = start + rng.randrange(20, 90)  # checkout, terraform init
    calls: list[Call] = list(TERRAFORM_PLAN)
    if rng.random() < _APPLY_SHARE:
        calls += list(TERRAFORM_APPLY[kind])
        if rng.random() < 0.3:
            calls.append(rng.choice(TERRAFORM_SHARED_APPLY))
    caller = Caller(ip, TERRAFORM_AGENT)
    for call in calls:
        failed = rng.random() < ctx.config.error_rate * 2
        out.append((t, _call(rng, t, identity, caller, resources.account, call, resources, failed)))
        t += rng.choice((0, 0, 0, 1, 1, 2))


def _call(
    rng: Random,
    t: int,
    identity: IdentityFactory,
    caller: Caller,
    account: str,
    call: Call,
    resources: Resources,
    failed: bool,
) -> Record:
    is_s3 = call.service == "s3"
    return api_call(
        rng,
        t,
        identity(),
        caller,
        account,
        resources.region,
        call.event_source,
        call.event_name,
        read_only=call.read_only,
        request=call.request(resources, rng),
        additional=s3_additional(rng) if is_s3 else None,
        error=throttled(call.event_source) if failed else None,
        host=resources.s3_host() if is_s3 else None,
    )


def _assume(pipeline: CiPipeline, t: int, ip: str, key: str, rng: Random) -> Record:
    role = pipeline.role
    account = role.account_id
    subject = f"repo:{pipeline.repo}:ref:refs/heads/main"
    provider = oidc_provider_arn(account)
    return api_call(
        rng,
        t,
        web_identity_user(account, subject, _AUDIENCE),
        Caller(ip, CREDENTIALS_ACTION_AGENT),
        account,
        "us-east-1",
        "sts.amazonaws.com",
        "AssumeRoleWithWebIdentity",
        read_only=True,
        request={"roleArn": role.arn, "roleSessionName": SESSION_NAME, "durationSeconds": 3600},
        response={
            "credentials": {
                "accessKeyId": key,
                "sessionToken": "IQoJb3JpZ2luX2VjE" + hex_string(rng, 48),
                "expiration": sts_time(t + 3600),
            },
            "subjectFromWebIdentityToken": subject,
            "assumedRoleUser": {
                "assumedRoleId": f"{role.role_id}:{SESSION_NAME}",
                "arn": role.session_arn(SESSION_NAME),
            },
            "provider": provider,
            "audience": _AUDIENCE,
        },
        additional={"identityProviderConnectionVerificationMethod": "IAMTrustStore"},
        resources=role_resource(role.arn, account),
    )
