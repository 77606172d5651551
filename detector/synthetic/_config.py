"""What the synthetic organisation looks like and how long its trail runs.

One frozen value, :class:`SyntheticConfig`, with a ``DEFAULT_*`` constant per field, so a test,
a notebook and a benchmark can each say only what they change. The period is whole UTC days:
``baseline_days`` of clean traffic, then ``attack_days`` during which the labelled scenarios
are injected on top of the same normal traffic.

Imports: the standard library, :mod:`detector.errors` and :mod:`detector.synthetic._formats`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

from detector.errors import ConfigError
from detector.synthetic._formats import DAY

__all__ = [
    "ALL_SCENARIOS",
    "DEFAULT_APPS",
    "DEFAULT_APP_CALLS_PER_INSTANCE_HOUR",
    "DEFAULT_ATTACK_DAYS",
    "DEFAULT_BASELINE_DAYS",
    "DEFAULT_ERROR_RATE",
    "DEFAULT_IAM_USERS",
    "DEFAULT_INSTANCES_PER_APP",
    "DEFAULT_PEOPLE",
    "DEFAULT_PIPELINES",
    "DEFAULT_REGIONS",
    "DEFAULT_START",
    "DEFAULT_TRAVEL_PROBABILITY",
    "DEFAULT_WORKLOAD_ACCOUNTS",
    "MISSED_SCENARIOS",
    "SCENARIOS",
    "SyntheticConfig",
]


DEFAULT_START: Final = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
DEFAULT_BASELINE_DAYS: Final = 14
DEFAULT_ATTACK_DAYS: Final = 2
DEFAULT_WORKLOAD_ACCOUNTS: Final = 3
DEFAULT_REGIONS: Final = ("us-east-1", "eu-west-1")
DEFAULT_PEOPLE: Final = 20
DEFAULT_IAM_USERS: Final = 3
DEFAULT_PIPELINES: Final = 3
DEFAULT_APPS: Final = 6
DEFAULT_INSTANCES_PER_APP: Final = 3
# Mean API calls per running instance/task per hour, before the diurnal shape; application
# traffic is most of the volume, so this is the knob that sets events per day.
DEFAULT_APP_CALLS_PER_INSTANCE_HOUR: Final = 60.0
DEFAULT_ERROR_RATE: Final = 0.01
DEFAULT_TRAVEL_PROBABILITY: Final = 0.02  # per person and working day: a trip starts

SCENARIOS: Final = (
    "stolen_role_credentials",
    "kms_decrypt_burst",
    "recon_burst",
    "logging_disabled",
    "queue_encryption_removed",
    "queue_made_public",
    "iam_persistence",
)

# Techniques an independent organisation showed us missing (issue 14); not in the default
# trail (its figures and tests stay as they were), in every organisation shape.
MISSED_SCENARIOS: Final = (
    "failed_defense_evasion",
    "crypto_mining",
    "sparse_instance_credentials",
    "tls_downgrade",
)
ALL_SCENARIOS: Final = SCENARIOS + MISSED_SCENARIOS

# Which actors each scenario needs, so a too-small organisation fails at construction.
_NEEDS: Final = {
    "stolen_role_credentials": "apps",
    "kms_decrypt_burst": "apps",
    "recon_burst": "iam_users",
    "iam_persistence": "iam_users",
    "logging_disabled": "people",
    "queue_encryption_removed": "people",
    "queue_made_public": "people",
    "failed_defense_evasion": "iam_users",
    "crypto_mining": "pipelines",
    "sparse_instance_credentials": "apps",
    "tls_downgrade": "people",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SyntheticConfig:
    """Sizes of the organisation, length of the period, and which attacks to inject.

    ``start`` must be midnight UTC. Scenarios are placed at seeded random times inside the
    attack period; an empty ``scenarios`` gives a clean trail of ``days`` days.
    """

    start: datetime = DEFAULT_START
    baseline_days: int = DEFAULT_BASELINE_DAYS
    attack_days: int = DEFAULT_ATTACK_DAYS
    workload_accounts: int = DEFAULT_WORKLOAD_ACCOUNTS
    regions: tuple[str, ...] = DEFAULT_REGIONS
    people: int = DEFAULT_PEOPLE
    iam_users: int = DEFAULT_IAM_USERS
    pipelines: int = DEFAULT_PIPELINES
    apps: int = DEFAULT_APPS
    instances_per_app: int = DEFAULT_INSTANCES_PER_APP
    app_calls_per_instance_hour: float = DEFAULT_APP_CALLS_PER_INSTANCE_HOUR
    error_rate: float = DEFAULT_ERROR_RATE
    travel_probability: float = DEFAULT_TRAVEL_PROBABILITY
    scenarios: tuple[str, ...] = SCENARIOS
    # Organisation shape (all off by default, so the default trail is what it always was).
    scanners: int = 0  # CSPM roles reading every API of every service, every few hours
    nat_share: float = 0.0  # share of applications calling out through a NAT gateway
    mfa_less_users: int = 0  # IAM users signing in to the console daily without MFA
    batch_jobs: int = 0  # roles with a small daily run and a monthly Decrypt peak
    new_pipelines: int = 0  # CI/CD pipelines that first run during the attack period
    data_apps: int = 0  # data-event heavy workloads (S3 object reads and writes)
    data_app_rate: float = 4.0  # their call rate, as a multiple of an application's

    def __post_init__(self) -> None:
        _check_start(self.start)
        _check_counts(self)
        _check_rates(self)
        _check_scenarios(self)

    @property
    def days(self) -> int:
        """Length of the whole period in days."""
        return self.baseline_days + self.attack_days

    @property
    def start_epoch(self) -> int:
        return int(self.start.timestamp())

    @property
    def attack_start_epoch(self) -> int:
        """First second after the clean baseline."""
        return self.start_epoch + self.baseline_days * DAY

    @property
    def end_epoch(self) -> int:
        """First second after the period."""
        return self.start_epoch + self.days * DAY

    def with_events_per_day(self, events_per_day: float) -> SyntheticConfig:
        """A copy whose application rate gives roughly ``events_per_day`` events a day.

        Application calls are most of the volume; people, pipelines and services add a
        roughly fixed amount (~7,500 a day at the default sizes) that this estimate subtracts
        first, so targets below that amount are not reached. Weekdays run above the average
        and weekends below it.
        """
        if events_per_day <= 0:
            raise ConfigError(f"events_per_day must be positive, got {events_per_day}")
        instances = _running_instances(self)
        # Measured per day: a person ~310 records, a pipeline ~95, the Config recorder ~95
        # per account and region, other service records ~90.
        accounts_regions = (1 + self.workload_accounts) * len(self.regions)
        other = 310.0 * self.people + 95.0 * self.pipelines + 95.0 * accounts_regions + 90.0
        # Each application call brings ~1.15 records (KMS calls services make for the role,
        # credential refreshes).
        per_rate = instances * 24 * 1.15 * _MEAN_DIURNAL
        rate = max(events_per_day - other, events_per_day * 0.1) / per_rate
        return replace(self, app_calls_per_instance_hour=rate)


# Mean of ``_apps.diurnal`` over a week (five weekdays, two weekend days); kept here so that
# sizing needs no generation. ``test_events_per_day_sizing_is_roughly_right`` guards it.
_MEAN_DIURNAL: Final = 0.723


def _running_instances(config: SyntheticConfig) -> float:
    # App i is ec2, ecs, lambda by i % 3; lambda runs two concurrent sessions.
    total = 0.0
    for index in range(config.apps):
        total += 2.0 if index % 3 == 2 else float(config.instances_per_app)
    return max(total, 1.0)


def _check_start(start: datetime) -> None:
    if start.tzinfo is None or start.utcoffset() is None:
        raise ConfigError(f"start must be timezone-aware (UTC midnight), got {start!r}")
    if int(start.timestamp()) % DAY != 0:
        raise ConfigError(f"start must be midnight UTC, got {start.isoformat()}")


def _check_counts(config: SyntheticConfig) -> None:
    positive = {
        "baseline_days": config.baseline_days,
        "workload_accounts": config.workload_accounts,
    }
    for name, value in positive.items():
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    non_negative = {
        "attack_days": config.attack_days,
        "people": config.people,
        "iam_users": config.iam_users,
        "pipelines": config.pipelines,
        "apps": config.apps,
        "scanners": config.scanners,
        "mfa_less_users": config.mfa_less_users,
        "batch_jobs": config.batch_jobs,
        "new_pipelines": config.new_pipelines,
        "data_apps": config.data_apps,
    }
    for name, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{name} must not be negative, got {value}")
    if config.instances_per_app < 1:
        raise ConfigError(f"instances_per_app must be at least 1, got {config.instances_per_app}")
    if not config.regions or len(set(config.regions)) != len(config.regions):
        raise ConfigError(f"regions must be non-empty and distinct, got {config.regions}")


def _check_rates(config: SyntheticConfig) -> None:
    if config.data_app_rate < 0:
        raise ConfigError("data_app_rate must not be negative")
    if config.app_calls_per_instance_hour < 0:
        raise ConfigError("app_calls_per_instance_hour must not be negative")
    for name, value in (
        ("error_rate", config.error_rate),
        ("travel_probability", config.travel_probability),
        ("nat_share", config.nat_share),
    ):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name} must be within [0, 1], got {value}")


def _check_scenarios(config: SyntheticConfig) -> None:
    unknown = sorted(set(config.scenarios) - set(ALL_SCENARIOS))
    if unknown:
        raise ConfigError(f"unknown scenarios {unknown}; known: {list(ALL_SCENARIOS)}")
    if config.scenarios and config.attack_days < 1:
        raise ConfigError("scenarios need attack_days >= 1 (or pass scenarios=())")
    for scenario in config.scenarios:
        needed = _NEEDS[scenario]
        if getattr(config, needed) < 1:
            raise ConfigError(f"scenario {scenario!r} needs {needed} >= 1")
