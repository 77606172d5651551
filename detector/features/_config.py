"""Settings of the feature stage: one frozen value with ``DEFAULT_*`` constants.

Imports: the standard library and :mod:`detector.errors` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from detector.errors import ConfigError

__all__ = [
    "DEFAULT_ALLOWED_LATENESS",
    "DEFAULT_ARCHIVE_LATENESS",
    "DEFAULT_DEDUP_HORIZON",
    "DEFAULT_HABIT_MIN_CALLS",
    "DEFAULT_HABIT_SHARE",
    "DEFAULT_KMS_EXCLUDED_PRINCIPALS",
    "DEFAULT_MAX_ITEMS_PER_KIND",
    "DEFAULT_PROFILE_TTL",
    "DEFAULT_SAMPLE_EVENT_IDS",
    "DEFAULT_SAMPLE_NEW_ITEMS",
    "DEFAULT_SAMPLE_SOURCE_IPS",
    "DEFAULT_WINDOW",
    "FeatureConfig",
    "window_suffix",
]

DEFAULT_WINDOW: Final = timedelta(minutes=5)
# Archive files (and so replays, training) reach S3 5-15 minutes after their events; the live
# service, fed by EventBridge within seconds, waits less (its --allowed-lateness, docs/latency.md).
DEFAULT_ALLOWED_LATENESS: Final = timedelta(minutes=15)
DEFAULT_ARCHIVE_LATENESS: Final = DEFAULT_ALLOWED_LATENESS
# Event ids are remembered while their event time is within this much of the watermark.
DEFAULT_DEDUP_HORIZON: Final = timedelta(minutes=15)
DEFAULT_PROFILE_TTL: Final = timedelta(days=90)
DEFAULT_MAX_ITEMS_PER_KIND: Final = 256
DEFAULT_KMS_EXCLUDED_PRINCIPALS: Final[frozenset[str]] = frozenset()
DEFAULT_SAMPLE_EVENT_IDS: Final = 10
DEFAULT_SAMPLE_SOURCE_IPS: Final = 10
DEFAULT_SAMPLE_NEW_ITEMS: Final = 10
# A principal "normally" uses a VPC endpoint / TLS details when at least this share of its
# past direct calls did, over at least this many calls.
DEFAULT_HABIT_SHARE: Final = 0.9
DEFAULT_HABIT_MIN_CALLS: Final = 20

_HOUR: Final = timedelta(hours=1)


def window_suffix(window: timedelta) -> str:
    """The window as it appears at the end of feature names: ``5m``, ``1h``, ``30s``."""
    seconds = int(window.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """How events become window rows and how much the profiles remember.

    ``window`` must divide one hour (so that every window falls in one hour-of-week bucket)
    and be a whole number of seconds. ``kms_excluded_principals`` are principal keys whose KMS
    calls are not counted (the detector's own consumers decrypting their queue).
    """

    window: timedelta = DEFAULT_WINDOW
    allowed_lateness: timedelta = DEFAULT_ALLOWED_LATENESS
    dedup_horizon: timedelta = DEFAULT_DEDUP_HORIZON
    profile_ttl: timedelta = DEFAULT_PROFILE_TTL
    max_items_per_kind: int = DEFAULT_MAX_ITEMS_PER_KIND
    kms_excluded_principals: frozenset[str] = DEFAULT_KMS_EXCLUDED_PRINCIPALS
    sample_event_ids: int = DEFAULT_SAMPLE_EVENT_IDS
    sample_source_ips: int = DEFAULT_SAMPLE_SOURCE_IPS
    sample_new_items: int = DEFAULT_SAMPLE_NEW_ITEMS
    habit_share: float = DEFAULT_HABIT_SHARE
    habit_min_calls: int = DEFAULT_HABIT_MIN_CALLS

    def __post_init__(self) -> None:
        if self.window <= timedelta(0) or self.window.microseconds:
            raise ConfigError(f"window: must be a positive whole number of seconds: {self.window}")
        if _HOUR % self.window:
            raise ConfigError(f"window: must divide one hour evenly: {self.window}")
        for name in ("allowed_lateness", "dedup_horizon"):
            value = getattr(self, name)
            if value < timedelta(0):
                raise ConfigError(f"{name}: must not be negative: {value}")
        if self.profile_ttl <= timedelta(0):
            raise ConfigError(f"profile_ttl: must be positive: {self.profile_ttl}")
        for name in ("max_items_per_kind", "sample_event_ids", "sample_source_ips"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1: {getattr(self, name)}")
        if self.sample_new_items < 1:
            raise ConfigError(f"sample_new_items: must be at least 1: {self.sample_new_items}")
        if not 0.0 < self.habit_share <= 1.0:
            raise ConfigError(f"habit_share: must be in (0, 1]: {self.habit_share}")
        if not isinstance(self.kms_excluded_principals, frozenset):
            raise ConfigError("kms_excluded_principals: must be a frozenset of principal keys")

    @property
    def window_ms(self) -> int:
        return int(self.window.total_seconds()) * 1000

    @property
    def suffix(self) -> str:
        return window_suffix(self.window)
