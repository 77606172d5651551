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
    "KNOWN_ITEMS_SCHEMA",
    "KNOWN_SOURCE_IPS_SCHEMA",
    "PRINCIPAL_HISTORY_SCHEMA",
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
# Every item the profile remembers, as text (kind may be the profile's Enum): kind is one of the
# profile's item kinds
# (public_ip, public_network, region, vpc_endpoint, event_name as "<service>:<Name>",
# access_key, user_agent).
KNOWN_ITEMS_SCHEMA: Final = pl.Schema(
    {"principal_key": pl.String(), "kind": pl.String(), "value": pl.String()}
)
# What the profile knows of each principal's history: since when it is known, its direct
# calls, how many carried TLS details, and the best TLS rank seen (1 = TLSv1 ... 4 = TLSv1.3,
# as detector.features ranks them).
PRINCIPAL_HISTORY_SCHEMA: Final = pl.Schema(
    {
        "principal_key": pl.String(),
        "first_seen": pl.Datetime("ms", "UTC"),
        "direct_calls": pl.UInt64(),
        "tls_calls": pl.UInt64(),
        "tls_max": pl.UInt8(),
    }
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
    ``learning_period``: how long the profile must have known a principal before detections
    that judge it against its own habits (who deploys Lambda, which networks a key uses) do.
    ``bulk_threshold`` / ``bulk_window``: how many instances launched, secrets read or
    findings suppressed by one principal within how long count as "in bulk" (counted within
    one batch).
    ``profile_lag``: how long after an event the profile knows what it did in a stream (a
    window closes ``window`` + allowed lateness after it starts: 5 + 15 minutes by default).
    Detections that judge against the profile treat what the batch itself showed that long
    before an event as known, so a replay's large batches judge like the stream's small ones
    instead of repeating one novelty for hours.
    """

    dedup_period: timedelta = timedelta(hours=1)
    state_retention: timedelta = timedelta(hours=24)
    trusted_account_ids: frozenset[str] = frozenset()
    failed_sign_in_threshold: int = 5
    failed_sign_in_window: timedelta = timedelta(minutes=10)
    max_sample: int = 20
    learning_period: timedelta = timedelta(days=2)
    bulk_threshold: int = 10
    bulk_window: timedelta = timedelta(minutes=10)
    profile_lag: timedelta = timedelta(minutes=20)

    def __post_init__(self) -> None:
        if self.dedup_period <= timedelta(0):
            raise ConfigError(f"dedup_period must be positive, got {self.dedup_period}")
        if self.state_retention < self.dedup_period:
            raise ConfigError("state_retention must be at least dedup_period")
        if self.failed_sign_in_threshold < 2:
            raise ConfigError("failed_sign_in_threshold must be at least 2")
        if self.failed_sign_in_window <= timedelta(0):
            raise ConfigError("failed_sign_in_window must be positive")
        if self.learning_period < timedelta(0):
            raise ConfigError("learning_period must not be negative")
        if self.bulk_threshold < 2:
            raise ConfigError("bulk_threshold must be at least 2")
        if self.bulk_window <= timedelta(0):
            raise ConfigError("bulk_window must be positive")
        if self.profile_lag < timedelta(0):
            raise ConfigError("profile_lag must not be negative")
        if self.max_sample < 1:
            raise ConfigError("max_sample must be at least 1")
        bad = sorted(a for a in self.trusted_account_ids if not re.fullmatch(r"\d{12}", a))
        if bad:
            raise ConfigError(f"trusted_account_ids are not 12-digit account ids: {bad}")


@dataclass(frozen=True, slots=True)
class DetectionContext:
    """What detections may know beyond the batch, supplied by the principal profile.

    ``known_source_ips``: (principal_key, source_ip_address) pairs a principal is known to call
    from (:data:`KNOWN_SOURCE_IPS_SCHEMA`); ``known_items``: every remembered item
    (:data:`KNOWN_ITEMS_SCHEMA`: regions, API calls, networks, ...); ``principal_history``: each
    principal's TLS history (:data:`PRINCIPAL_HISTORY_SCHEMA`). Each is ``None`` when no profile
    exists yet, and detections that use it then fall back to a documented batch-only rule.
    The profile learns a window only when it closes, in event time, so streaming and replay
    see the same context for the same events.
    """

    known_source_ips: pl.DataFrame | None = None
    known_items: pl.DataFrame | None = None
    principal_history: pl.DataFrame | None = None

    @staticmethod
    def from_profile_items(
        items: pl.DataFrame, principals: pl.DataFrame | None = None
    ) -> DetectionContext:
        """The context of the principal profile's long-form items (``principal_key``, ``kind``,
        ``value``, ...) and, when given, its principal rows (``principal_key``,
        ``first_seen``, ``direct_calls``, ``tls_calls``, ``tls_max``, ...). Taking the frames rather than
        importing :mod:`detector.features` keeps the two stages apart."""
        # No copy: the profile's columns are already text, and its kind (an Enum) compares
        # with a string as it is; casting a large profile on every batch would cost more than
        # the detections using it.
        text = items.select("principal_key", "kind", "value")
        known = text.filter(pl.col("kind") == _PUBLIC_IP_ITEM).select(
            pl.col("principal_key").cast(pl.String),
            pl.col("value").cast(pl.String).alias("source_ip_address"),
        )
        history = (
            None
            if principals is None
            else principals.select(
                pl.col(name).cast(dtype) for name, dtype in PRINCIPAL_HISTORY_SCHEMA.items()
            )
        )
        return DetectionContext(known_source_ips=known, known_items=text, principal_history=history)

    def known(self, kind: str) -> pl.LazyFrame | None:
        """(principal_key, value) of the remembered items of one kind; None without a profile."""
        if self.known_items is None:
            return None
        return (
            self.known_items.lazy().filter(pl.col("kind") == kind).select("principal_key", "value")
        )

    def mature(self, since: timedelta) -> pl.LazyFrame | None:
        """``principal_key`` and ``known_since`` (first seen + ``since``) of the principals the
        profile has known at least ``since`` by an event's time: what a principal "usually"
        does means little about a principal seen for an hour. None without a profile."""
        if self.principal_history is None:
            return None
        return self.principal_history.lazy().select(
            "principal_key", known_since=pl.col("first_seen") + since
        )

    def __post_init__(self) -> None:
        for name, frame, schema in (
            ("known_source_ips", self.known_source_ips, KNOWN_SOURCE_IPS_SCHEMA),
            ("known_items", self.known_items, KNOWN_ITEMS_SCHEMA),
            ("principal_history", self.principal_history, PRINCIPAL_HISTORY_SCHEMA),
        ):
            if frame is not None and any(
                not _same_type(frame.schema.get(column), dtype) for column, dtype in schema.items()
            ):
                raise ConfigError(
                    f"{name} must have columns {dict(schema)}, got {dict(frame.schema)}"
                )


def _same_type(found: pl.DataType | None, wanted: pl.DataType) -> bool:
    """Equal types; a categorical or enum stands for text (the profile's item kinds)."""
    if found is not None and wanted == pl.String and isinstance(found, pl.Categorical | pl.Enum):
        return True
    return found == wanted


class Matcher(Protocol):
    """The rows of ``events`` (already pre-selected) that match, each with an ``evidence``
    column: a JSON object as text, naming what in the event made it match. No rows in, no
    rows out: the runner skips a detection that selected nothing in a batch."""

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
    not) produce a finding of this detection; the tests run every one of them, with
    ``example_context`` (what the profile knows) for detections that judge against it.
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
    example_context: DetectionContext | None = None

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
