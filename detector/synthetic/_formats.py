"""How AWS spells identifiers, addresses and times in CloudTrail records.

Small pure functions that turn draws from a seeded :class:`random.Random` into AWS-shaped
strings (event ids, access key ids, instance ids, public IPs), plus the time formats a record
carries: ``eventTime`` (ISO-8601, seconds, ``Z``), the ``Mar 4, 2024, 11:00:00 AM`` form of
STS responses, and the minute stamp of archive file names. Times are integer epoch seconds.

Imports: the standard library only.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from functools import lru_cache
from random import Random
from typing import Final

DAY: Final = 86_400
_UPPER_ALNUM: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_ALNUM: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_LOWER_ALNUM: Final = "abcdefghijklmnopqrstuvwxyz0123456789"
_API_VERSION: Final = re.compile(r"\d{8}(v\d+)?$")
_WORD_BOUNDARY: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# RFC 4122 variant nibble (10xx) for each random hex digit.
_UUID_VARIANT: Final = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}
# First octets of ranges that are public and not reserved; enough variety for distinct
# homes, offices, CI runners and attackers.
_PUBLIC_FIRST_OCTETS: Final = (
    3, 5, 13, 18, 23, 31, 34, 37, 45, 46, 52, 62, 66, 73, 77, 81, 84, 86, 89, 90, 92, 94,
    95, 98, 104, 107, 109, 141, 146, 151, 176, 178, 185, 188, 193, 194, 195, 203, 212, 213,
)  # fmt: skip


def uuid4(rng: Random) -> str:
    """A version-4 UUID string drawn from ``rng`` (never from the OS)."""
    h = "%032x" % rng.getrandbits(128)  # noqa: UP031 -- %-format is the fastest here
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_UUID_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def hex_string(rng: Random, length: int) -> str:
    return f"{rng.getrandbits(4 * length):0{length}x}"


def alnum(rng: Random, length: int) -> str:
    """Mixed-case letters and digits, as in archive file name suffixes."""
    return "".join(rng.choices(_ALNUM, k=length))


def lower_alnum(rng: Random, length: int) -> str:
    return "".join(rng.choices(_LOWER_ALNUM, k=length))


def aws_id(rng: Random, prefix: str, length: int = 16) -> str:
    """An IAM unique id such as ``AKIA...`` (keys), ``AROA...`` (roles), ``AIDA...`` (users)."""
    return prefix + "".join(rng.choices(_UPPER_ALNUM, k=length))


def derived_aws_id(prefix: str, *parts: object, length: int = 16) -> str:
    """An AWS-shaped id that is a pure function of ``parts``.

    Used where two independent generators must agree without sharing a random stream, e.g.
    the session key an instance uses in one credential period, which an attack reuses.
    """
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=32).digest()
    return prefix + "".join(_UPPER_ALNUM[b & 31] for b in digest[:length])


def derived_hex(length: int, *parts: object) -> str:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=32).hexdigest()
    return digest[:length]


def public_ipv4(rng: Random) -> str:
    first = rng.choice(_PUBLIC_FIRST_OCTETS)
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def private_ipv4(rng: Random, prefix: str) -> str:
    """An address in ``prefix`` (``"10.12"``) as a VPC would hand out."""
    return f"{prefix}.{rng.randrange(0, 64)}.{rng.randrange(4, 251)}"


@lru_cache(maxsize=8192)
def _day_text(day: int) -> str:
    return datetime.fromtimestamp(day * DAY, UTC).strftime("%Y-%m-%d")


@lru_cache(maxsize=1)
def _clock() -> tuple[str, ...]:
    # Every second of a day, formatted once: formatting times is otherwise a hot spot.
    return tuple(
        f"T{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)
    )


def iso_time(t: int) -> str:
    """``eventTime`` form: ``2024-03-04T09:15:02Z``."""
    return _day_text(t // DAY) + _clock()[t % DAY]


@lru_cache(maxsize=8192)
def _day_epoch(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())


def parse_iso_time(text: str) -> int:
    """Epoch seconds of an ``eventTime`` value (fast path for the form :func:`iso_time` writes)."""
    if len(text) == 20 and text[10] == "T" and text[19] == "Z":
        return (
            _day_epoch(text[:10])
            + int(text[11:13]) * 3600
            + int(text[14:16]) * 60
            + int(text[17:19])
        )
    return int(datetime.fromisoformat(text).timestamp())


def sts_time(t: int) -> str:
    """STS response form: ``Mar 4, 2024, 11:00:00 AM``."""
    moment = datetime.fromtimestamp(t, UTC)
    hour = moment.hour % 12 or 12
    half = "AM" if moment.hour < 12 else "PM"
    return f"{moment:%b} {moment.day}, {moment.year}, {hour}:{moment:%M:%S} {half}"


def minute_stamp(t: int) -> str:
    """Archive file name stamp: ``20240304T0915Z``."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y%m%dT%H%MZ")


def second_stamp(t: int) -> str:
    """Digest file name stamp: ``20240304T091502Z``."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y%m%dT%H%M%SZ")


def date_path(t: int) -> str:
    """``YYYY/MM/DD`` folder of an archive key."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y/%m/%d")


@lru_cache(maxsize=1024)
def kebab(name: str) -> str:
    """``DescribeInstances`` -> ``describe-instances``, as the AWS CLI names commands.

    API version suffixes in event names (``ListFunctions20150331``) are dropped.
    """
    return _WORD_BOUNDARY.sub("-", _API_VERSION.sub("", name)).lower()
