"""Organisations of different shapes: named presets of :class:`SyntheticConfig`.

A shape says how big the organisation is and what kind of traffic it has besides people and
applications: CI/CD roles, CSPM scanners, NAT egress, IAM users without MFA, travel, seasonal
batch jobs, pipelines new in the period, data-event heavy workloads. Every shape injects every
technique (:data:`ALL_SCENARIOS`), so an evaluation measures them all everywhere.

The same ``(shape, seed)`` gives the same organisation and trail. Shapes are split into
:data:`DEVELOPMENT_SHAPES` (look at them while tuning) and :data:`HELD_BACK_SHAPES` (only
report them: never tune against them); the same goes for :data:`DEVELOPMENT_SEEDS` and
:data:`HELD_BACK_SEEDS`.

Imports: the standard library and this package's config.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import Any, Final

from detector.errors import ConfigError
from detector.synthetic._config import ALL_SCENARIOS, SyntheticConfig

__all__ = [
    "DEVELOPMENT_SEEDS",
    "DEVELOPMENT_SHAPES",
    "HELD_BACK_SEEDS",
    "HELD_BACK_SHAPES",
    "SHAPES",
    "shape_config",
]

# 17 days: a cold-start week, then ten days of steady state; the attacks fall in the last
# five days (training on the "clean first days" uses the first twelve).
SHAPE_BASELINE_DAYS: Final = 12
SHAPE_ATTACK_DAYS: Final = 5
# A third of the default rate: shapes differ in who is there, not in volume, and a shape must
# evaluate in minutes on a small machine (large volumes belong in bench/).
SHAPE_APP_CALLS_PER_INSTANCE_HOUR: Final = 20.0

_SHAPES: dict[str, dict[str, Any]] = {
    # A handful of people, everything in one region, a few apps, one legacy key.
    "startup": {
        "workload_accounts": 1, "regions": ("us-east-1",), "people": 8, "iam_users": 1,
        "pipelines": 2, "apps": 3, "instances_per_app": 2, "mfa_less_users": 1,
        "travel_probability": 0.04, "nat_share": 1.0,
    },
    # Many accounts and people, a scanner, legacy users, travel, batch jobs.
    "enterprise": {
        "workload_accounts": 5, "people": 40, "iam_users": 4, "pipelines": 6, "apps": 8,
        "scanners": 1, "mfa_less_users": 3, "batch_jobs": 2, "nat_share": 0.3,
        "travel_probability": 0.03, "new_pipelines": 1,
    },
    # Mostly CI/CD: dozens of deploy roles, several new in the period, few people.
    "saas-ci-heavy": {
        "workload_accounts": 3, "people": 12, "iam_users": 2, "pipelines": 24, "apps": 6,
        "new_pipelines": 4, "scanners": 1, "nat_share": 0.5,
    },
    # Audited: two scanners, strict people, batch jobs, legacy console users without MFA.
    "regulated": {
        "workload_accounts": 4, "people": 25, "iam_users": 3, "pipelines": 4, "apps": 6,
        "scanners": 2, "batch_jobs": 3, "mfa_less_users": 2, "travel_probability": 0.01,
    },
    # Data-event heavy: S3 readers and writers, batch jobs, NAT egress.
    "data-platform": {
        "workload_accounts": 3, "people": 15, "iam_users": 2, "pipelines": 4, "apps": 4,
        "data_apps": 3, "data_app_rate": 4.0, "batch_jobs": 2, "nat_share": 0.6,
    },
    # People on the move: frequent travel, remote work, a scanner and new pipelines.
    "remote-first": {
        "workload_accounts": 2, "people": 30, "iam_users": 2, "pipelines": 5, "apps": 5,
        "travel_probability": 0.08, "scanners": 1, "new_pipelines": 2, "mfa_less_users": 1,
    },
}  # fmt: skip
SHAPES: Final = MappingProxyType(_SHAPES)

DEVELOPMENT_SHAPES: Final = ("startup", "enterprise", "saas-ci-heavy")
HELD_BACK_SHAPES: Final = ("regulated", "data-platform", "remote-first")
DEVELOPMENT_SEEDS: Final = (1, 2)
HELD_BACK_SEEDS: Final = (101,)


def shape_config(
    name: str,
    *,
    baseline_days: int = SHAPE_BASELINE_DAYS,
    attack_days: int = SHAPE_ATTACK_DAYS,
    scale: float = 1.0,
) -> SyntheticConfig:
    """The configuration of a named shape; ``scale`` shrinks or grows the head counts (a
    test uses a tiny one)."""
    if name not in SHAPES:
        raise ConfigError(f"unknown organisation shape {name!r}; known: {sorted(SHAPES)}")
    if scale <= 0:
        raise ConfigError(f"scale must be positive, got {scale}")
    config = SyntheticConfig(
        baseline_days=baseline_days,
        attack_days=attack_days,
        scenarios=ALL_SCENARIOS,
        app_calls_per_instance_hour=SHAPE_APP_CALLS_PER_INSTANCE_HOUR,
    )
    values = dict(SHAPES[name])
    for field in ("people", "iam_users", "pipelines", "apps", "data_apps"):
        if field in values:
            values[field] = max(1, round(values[field] * scale)) if values[field] else 0
    return replace(config, **values)
