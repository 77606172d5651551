"""The learning period: the model judges a principal only once it has a baseline.

A principal new to the state (all of them after a cold start) has no history: every window is
full of "new" IPs, user agents and API calls, and its own baseline is its peers'. GuardDuty
answers this with a learning period; so do we. Until a principal is *mature* the model does not
report its windows, while they still train its own baseline, its profile and its peer group.
Signature detections are not gated: they report from the first minute.

A principal is mature, at a window's start, when what was learned *before* that window shows

- activity on at least ``min_days`` distinct UTC days, over at least ``min_windows`` windows,
  and at least ``min_age`` since it was first seen: its daily rhythm seen more than once, and
  half an hour of activity, enough for a behavioural peer group (a rarely active principal is
  then judged mostly against its peers: its own history is shrunk towards theirs); or
- ``max_age`` since it was first seen, however little it did (a weekly job, a rarely used
  break-glass role): waiting longer would never make it better known.

Defaults: 2 days, 6 windows (half an hour of 5-minute windows), 1 day, 7 days. Two days, not
GuardDuty's 7-14: the profiles (novelty) and own baselines converge within a day or two on the
synthetic and the independent organisation, and `detector replay` of two days of history (the
quickstart) should leave a warm state. Everything is in window (event) time, so replay and
stream agree.

Imports: the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from detector.errors import ConfigError

__all__ = [
    "DAY_MS",
    "DEFAULT_LEARNING_MAX_AGE",
    "DEFAULT_LEARNING_MIN_AGE",
    "DEFAULT_LEARNING_MIN_DAYS",
    "DEFAULT_LEARNING_MIN_WINDOWS",
    "LearningConfig",
]

DAY_MS: Final = 86_400_000
DEFAULT_LEARNING_MIN_DAYS: Final = 2
DEFAULT_LEARNING_MIN_WINDOWS: Final = 6
DEFAULT_LEARNING_MIN_AGE: Final = timedelta(days=1)
DEFAULT_LEARNING_MAX_AGE: Final = timedelta(days=7)


def _ms(value: timedelta) -> int:
    return int(value.total_seconds() * 1000)


@dataclass(frozen=True, slots=True)
class LearningConfig:
    """When a principal leaves its learning period; ``enabled=False`` reports from the start."""

    min_days: int = DEFAULT_LEARNING_MIN_DAYS
    min_windows: int = DEFAULT_LEARNING_MIN_WINDOWS
    min_age: timedelta = DEFAULT_LEARNING_MIN_AGE
    max_age: timedelta = DEFAULT_LEARNING_MAX_AGE
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.min_days < 0 or self.min_windows < 0:
            raise ConfigError("learning: min_days and min_windows must not be negative")
        if self.min_age < timedelta(0) or self.max_age < timedelta(0):
            raise ConfigError("learning: min_age and max_age must not be negative")

    @property
    def max_age_ms(self) -> int:
        return _ms(self.max_age)

    def mature(self, *, first_ms: int | None, days: int, windows: float, at_ms: int) -> bool:
        """Whether a principal with this history (``first_ms`` None: never seen) has left its
        learning period at ``at_ms`` (epoch ms, a window start)."""
        if not self.enabled:
            return True
        if first_ms is None:
            return False
        age = at_ms - first_ms
        if age >= self.max_age_ms:
            return True
        return days >= self.min_days and windows >= self.min_windows and age >= _ms(self.min_age)
