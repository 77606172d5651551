"""A cloud security posture (CSPM) scanner: every read API of every service, in every account
and region, every few hours, from the vendor's addresses.

Broad and busy like an attacker's enumeration, but on a clock and from the same few addresses
with the same user agent: a detector must learn to leave it alone.

Imports: the standard library and this package's catalog, context, formats, identity and
record modules.
"""

from __future__ import annotations

from typing import Final

from detector.synthetic._catalog import READS
from detector.synthetic._context import DayContext
from detector.synthetic._formats import aws_id
from detector.synthetic._identity import role_session
from detector.synthetic._records import GLOBAL_REGION, Caller, TimedRecord, api_call

_GLOBAL: Final = frozenset({"iam", "s3"})
_SESSION: Final = "cspm-scan"


def scanner_day(ctx: DayContext, index: int) -> list[TimedRecord]:
    """Every scan of one scanner that starts on this day."""
    scanner = ctx.org.scanners[index]
    rng = ctx.rng("scanner", index)
    out: list[TimedRecord] = []
    end = min(ctx.end, ctx.config.end_epoch)
    for scan in range(24 // scanner.every_hours):
        start = ctx.start + scanner.offset + scan * scanner.every_hours * 3600
        caller = Caller(rng.choice(scanner.ips), scanner.agent)
        t = start
        for role in scanner.roles:
            identity = role_session(role, _SESSION, aws_id(rng, "ASIA"), t)
            for region in ctx.config.regions:
                resources = ctx.org.account_resources(role.account_id, region)
                for service, calls in READS.items():
                    if service in _GLOBAL and region != ctx.config.regions[0]:
                        continue
                    for call in calls:
                        if t >= end:
                            return out
                        record = api_call(
                            rng,
                            t,
                            identity(),
                            caller,
                            role.account_id,
                            GLOBAL_REGION if service == "iam" else region,
                            call.event_source,
                            call.event_name,
                            read_only=True,
                            request=call.request(resources, rng),
                        )
                        out.append((t, record))
                        t += rng.choice((0, 0, 1))
    return out
