"""Seasonal batch jobs: a small nightly run, and once a month (on the job's ``peak_day``)
month-end processing that decrypts a hundred times more.

Benign, and a novelty the first time it is seen (labelled in :mod:`._novelties`).

Imports: the standard library and this package's context, formats, identity, org and record
modules.
"""

from __future__ import annotations

from random import Random
from typing import Final

from detector.synthetic._context import DayContext
from detector.synthetic._formats import aws_id
from detector.synthetic._identity import Record, role_session
from detector.synthetic._org import BatchJob
from detector.synthetic._records import Caller, TimedRecord, api_call, kms_key_resource

_NIGHTLY_DECRYPTS: Final = (20, 40)
_PEAK_DECRYPTS: Final = (2_000, 3_000)
PEAK_SECONDS: Final = 2 * 3600


def batch_day(ctx: DayContext, index: int) -> list[TimedRecord]:
    job = ctx.org.batch_jobs[index]
    rng = ctx.rng("batch", index)
    start = ctx.start + job.run_hour * 3600 + rng.randrange(0, 600)
    peak = ctx.day == job.peak_day
    lo, hi = _PEAK_DECRYPTS if peak else _NIGHTLY_DECRYPTS
    span = PEAK_SECONDS if peak else 600
    identity = role_session(job.role, job.name, aws_id(rng, "ASIA"), start)
    caller = Caller(job.private_ip, job.agent, job.vpce, job.role.account_id)
    resource = kms_key_resource(job.resources.key_arn, job.role.account_id)
    times = sorted(start + rng.randrange(0, span) for _ in range(rng.randrange(lo, hi)))
    end = min(ctx.end, ctx.config.end_epoch)
    return [(t, _decrypt(rng, t, identity(), caller, job, resource)) for t in times if t < end]


def _decrypt(
    rng: Random, t: int, identity: Record, caller: Caller, job: BatchJob, resource: list[Record]
) -> Record:
    return api_call(
        rng,
        t,
        identity,
        caller,
        job.role.account_id,
        job.resources.region,
        "kms.amazonaws.com",
        "Decrypt",
        read_only=True,
        request={
            "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
            "encryptionContext": {"job": job.name},
        },
        resources=[dict(resource[0])],
    )
