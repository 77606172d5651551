"""AWS acting on its own: the Config recorder, CloudTrail's bucket checks, key rotation.

These principals are busy and broad (the Config recorder describes a bit of everything every
few hours, like an attacker's enumeration would) but come from service host names, not
addresses, with service user agents. They are what a detector must learn to leave alone.

Imports: the standard library and this package's catalog, context, formats, identity and
record modules.
"""

from __future__ import annotations

from random import Random
from typing import Final

from detector.synthetic._catalog import CONFIG_SWEEP
from detector.synthetic._context import DayContext, credential_key
from detector.synthetic._identity import aws_service, role_session
from detector.synthetic._records import (
    GLOBAL_REGION,
    Caller,
    TimedRecord,
    api_call,
    s3_additional,
    service_event,
    throttled,
)

CONFIG_HOST: Final = "config.amazonaws.com"
CLOUDTRAIL_HOST: Final = "cloudtrail.amazonaws.com"
_SWEEP_EVERY: Final = 6 * 3600
DAY_SWEEPS: Final = 24 * 3600 // _SWEEP_EVERY
_ROTATION_DAILY_PROBABILITY: Final = 1 / 30


def services_day(ctx: DayContext) -> list[TimedRecord]:
    """Every service principal's records on one day, in every account and region."""
    out: list[TimedRecord] = []
    for account in ctx.org.accounts:
        for region in ctx.config.regions:
            rng = ctx.rng("services", account.account_id, region)
            _config_sweeps(ctx, account.account_id, region, rng, out)
    _trail_bucket_checks(ctx, ctx.rng("services", "cloudtrail"), out)
    _key_rotations(ctx, ctx.rng("services", "kms"), out)
    return [(t, r) for t, r in out if t < ctx.config.end_epoch]


def _config_sweeps(
    ctx: DayContext, account: str, region: str, rng: Random, out: list[TimedRecord]
) -> None:
    role = ctx.org.service_role(account, CONFIG_HOST, "AWSServiceRoleForConfig")
    resources = ctx.org.account_resources(account, region)
    caller = Caller(CONFIG_HOST, CONFIG_HOST, tls=False)
    calls = [c for c in CONFIG_SWEEP if region == GLOBAL_REGION or c.service != "iam"]
    for sweep in range(DAY_SWEEPS):
        t = ctx.start + sweep * _SWEEP_EVERY + rng.randrange(0, 1800)
        issued = t - t % 3600
        identity = role_session(
            role, "AWSConfig-Describe", credential_key(ctx.seed, role.arn, issued), issued
        )
        for call in rng.sample(calls, min(len(calls), rng.randrange(15, 40))):
            failed = rng.random() < ctx.config.error_rate * 3
            who = identity()
            who["invokedBy"] = CONFIG_HOST
            is_s3 = call.service == "s3"
            record = api_call(
                rng, t, who, caller, account, region, call.event_source, call.event_name,
                read_only=True, request=call.request(resources, rng),
                additional=s3_additional(rng) if is_s3 else None,
                error=throttled(call.event_source) if failed else None,
            )  # fmt: skip
            out.append((t, record))
            t += rng.choice((0, 0, 1))


def _trail_bucket_checks(ctx: DayContext, rng: Random, out: list[TimedRecord]) -> None:
    """CloudTrail checks its bucket's ACL before delivering; roughly hourly."""
    account = ctx.org.management.account_id
    bucket = ctx.org.trail_bucket
    caller = Caller(CLOUDTRAIL_HOST, CLOUDTRAIL_HOST, tls=False)
    for hour in range(24):
        t = ctx.start + hour * 3600 + rng.randrange(0, 3600)
        record = api_call(
            rng, t, aws_service(CLOUDTRAIL_HOST), caller, account, GLOBAL_REGION,
            "s3.amazonaws.com", "GetBucketAcl", read_only=True,
            request={"bucketName": bucket, "Host": f"{bucket}.s3.amazonaws.com", "acl": ""},
            additional=s3_additional(rng),
            resources=[{"accountId": account, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}],
        )  # fmt: skip
        out.append((t, record))


def _key_rotations(ctx: DayContext, rng: Random, out: list[TimedRecord]) -> None:
    for app in ctx.org.apps:
        if rng.random() >= _ROTATION_DAILY_PROBABILITY:
            continue
        t = ctx.start + rng.randrange(0, 24 * 3600)
        key = app.resources
        record = service_event(
            rng, t, app.account, app.region, "kms.amazonaws.com", "RotateKey",
            additional={"keyId": key.key_arn},
            resources=[{"accountId": app.account, "type": "AWS::KMS::Key", "ARN": key.key_arn}],
        )  # fmt: skip
        out.append((t, record))
