"""One day of generation: which day, and the seeded random streams of each actor.

Every actor draws from its own streams, named by (seed, day, actor), so a day can be made
alone (the iterator makes one day at a time) and adding an actor never changes another's
traffic. :func:`credential_key` gives the session key of an instance or task in one
credential period as a pure function, so application traffic and the stolen-credentials
attack agree on it without sharing state.

Imports: the standard library, numpy, and this package's :mod:`._config`, :mod:`._formats`
and :mod:`._org`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from random import Random
from typing import Final

import numpy as np

from detector.synthetic._config import SyntheticConfig
from detector.synthetic._formats import DAY, derived_aws_id
from detector.synthetic._org import Organisation

CREDENTIAL_PERIOD: Final = 6 * 3600  # instance, task and function credentials last 6 hours


@dataclass(frozen=True, slots=True)
class DayContext:
    config: SyntheticConfig
    org: Organisation
    seed: int
    day: int  # index from the start of the period

    @property
    def start(self) -> int:
        return self.config.start_epoch + self.day * DAY

    @property
    def end(self) -> int:
        return self.start + DAY

    @property
    def weekday(self) -> int:
        """0 = Monday (1970-01-01 was a Thursday)."""
        return (self.start // DAY + 3) % 7

    @property
    def is_weekend(self) -> bool:
        return self.weekday >= 5

    def rng(self, *actor: object) -> Random:
        return Random("/".join(map(str, (self.seed, self.day, *actor))))

    def np_rng(self, *actor: object) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.day, _stable_int(actor)])


def _stable_int(parts: tuple[object, ...]) -> int:
    text = "/".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def weekday_of(t: int) -> int:
    return (t // DAY + 3) % 7


def credential_key(seed: int, session_name: str, period_start: int) -> str:
    """The ``ASIA...`` key of a role session whose credentials were issued at ``period_start``."""
    return derived_aws_id("ASIA", seed, session_name, period_start)


def period_start(incarnation_start: int, t: int) -> int:
    """When the credentials in use at ``t`` were issued (every 6 hours from launch)."""
    return incarnation_start + (t - incarnation_start) // CREDENTIAL_PERIOD * CREDENTIAL_PERIOD
