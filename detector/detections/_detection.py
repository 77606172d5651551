"""What a detection is, and the settings and context every detection may read.

A :class:`Detection` is data: an id, a title, a severity, ATT&CK ids, a cheap pre-selection of
events, a pure matcher, and example events beside it. Nothing here holds state or registers
itself anywhere: the caller passes the detections it wants to run.

Imports: polars, detector.findings (the severity scale), detector.errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final, Protocol, TypeAlias

import polars as pl

from detector.errors import ConfigError
from detector.findings import MAX_SEVERITY, MIN_SEVERITY

__all__ = [
    "KNOWN_SOURCE_IPS_SCHEMA",
    "Detection",
    "DetectionConfig",
    "DetectionContext",
    "Example",
    "Matcher",
    "Record",
]

Record: TypeAlias = Mapping[str, Any]  # one raw CloudTrail record, as AWS writes it
Example: TypeAlias = tuple[Record, ...]  # one batch of records: most examples are one event

_PUBLIC_IP_ITEM: Final = "public_ip"  # the profile's item kind for public source addresses
KNOWN_SOURCE_IPS_SCHEMA: Final = pl.Schema(
    {"principal_key": pl.String(), "source_ip_address": pl.String()}
)


@dataclass(frozen=True, slots=True)
class DetectionConfig:
    """Settings shared by all detections.

    ``dedup_period``: one finding per detection and principal per period; periods are aligned
    to the Unix epoch, so the same events always fall in the same period (and give the same
    finding id). ``state_retention``: how long a period stays remembered after it starts;
    events that arrive later than that may repeat a finding, with the same id.
    ``trusted_account_ids``: accounts (e.g. the rest of the organisation) that are not
    "another account" when a policy grants them access.
    ``failed_sign_in_threshold`` / ``failed_sign_in_window``: how many failed console sign-ins
    of one principal within how long count as repeated (counted within one batch).
    ``max_sample``: cap on event ids, source IPs and evidence values carried by a finding.
    """

    dedup_period: timedelta = timedelta(hours=1)
    state_retention: timedelta = timedelta(hours=24)
    trusted_account_ids: frozenset[str] = frozenset()
    failed_sign_in_threshold: int = 5
    failed_sign_in_window: timedelta = timedelta(minutes=10)
    max_sample: int = 20

    def __post_init__(self) -> None:
        if self.dedup_period <= timedelta(0):
            raise ConfigError(f"dedup_period must be positive, got {self.dedup_period}")
        if self.state_retention < self.dedup_period:
            raise ConfigError("state_retention must be at least dedup_period")
        if self.failed_sign_in_threshold < 2:
            raise ConfigError("failed_sign_in_threshold must be at least 2")
        if self.failed_sign_in_window <= timedelta(0):
            raise ConfigError("failed_sign_in_window must be positive")
        if self.max_sample < 1:
            raise ConfigError("max_sample must be at least 1")
        bad = sorted(a for a in self.trusted_account_ids if not re.fullmatch(r"\d{12}", a))
        if bad:
            raise ConfigError(f"trusted_account_ids are not 12-digit account ids: {bad}")


@dataclass(frozen=True, slots=True)
class DetectionContext:
    """What detections may know beyond the batch, supplied by the principal profile.

    ``known_source_ips``: (principal_key, source_ip_address) pairs a principal is known to call
    from (:data:`KNOWN_SOURCE_IPS_SCHEMA`); ``None`` when no profile exists yet, and detections
    that use it then fall back to a documented batch-only rule.
    """

    known_source_ips: pl.DataFrame | None = None

    @staticmethod
    def from_profile_items(items: pl.DataFrame) -> DetectionContext:
        """The context of the principal profile's long-form items (``principal_key``, ``kind``,
        ``value``, ...): its ``public_ip`` items are the known source addresses. Taking the
        frame rather than importing :mod:`detector.features` keeps the two stages apart."""
        known = items.filter(pl.col("kind").cast(pl.String) == _PUBLIC_IP_ITEM).select(
            pl.col("principal_key").cast(pl.String),
            pl.col("value").cast(pl.String).alias("source_ip_address"),
        )
        return DetectionContext(known_source_ips=known)

    def __post_init__(self) -> None:
        known = self.known_source_ips
        if known is not None and any(
            known.schema.get(name) != dtype for name, dtype in KNOWN_SOURCE_IPS_SCHEMA.items()
        ):
            raise ConfigError(
                f"known_source_ips must have columns {dict(KNOWN_SOURCE_IPS_SCHEMA)}, "
                f"got {dict(known.schema)}"
            )


class Matcher(Protocol):
    """The rows of ``events`` (already pre-selected) that match, each with an ``evidence``
    column: a JSON object as text, naming what in the event made it match."""

    def __call__(
        self, events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
    ) -> pl.LazyFrame: ...


# Native ids are snake_case; a Sigma rule's detection is named by the rule's id (a UUID).
_ID: Final = re.compile(r"[a-z][a-z0-9_]*|sigma:[0-9a-f][0-9a-f-]*")
_ATTACK_ID: Final = re.compile(r"T\d{4}(\.\d{3})?")


@dataclass(frozen=True, slots=True, eq=False)
class Detection:
    """One signature detection.

    ``selects`` is a cheap expression over plain event columns (event source and name,
    principal type): the runner ORs the selections of all detections and filters the batch
    once, so request parameters are parsed only for the few rows a detection could match.
    ``matches`` then decides, on the selected rows only. ``anchors`` name the equivalent rules
    of other products (GuardDuty finding types, Panther rule ids, Sigma rules).
    ``positives``/``negatives`` are example batches of raw CloudTrail records that must (must
    not) produce a finding of this detection; the tests run every one of them.
    """

    id: str
    title: str
    description: str
    severity: float
    mitre: tuple[str, ...]
    selects: pl.Expr
    matches: Matcher
    positives: tuple[Example, ...]
    negatives: tuple[Example, ...]
    anchors: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.id):
            raise ValueError(f"detection id {self.id!r} is not snake_case")
        if not MIN_SEVERITY <= self.severity <= MAX_SEVERITY:
            raise ValueError(f"detection {self.id}: severity {self.severity} out of range")
        bad = [m for m in self.mitre if not _ATTACK_ID.fullmatch(m)]
        if bad or (not self.mitre and not self.id.startswith("sigma:")):  # Sigma tags are optional
            raise ValueError(f"detection {self.id}: ATT&CK ids {bad or '(none)'} are not Tnnnn")
        if not self.positives or not self.negatives:
            raise ValueError(f"detection {self.id}: needs positive and negative examples")
