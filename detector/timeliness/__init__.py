"""When findings are reported: time to detect, and what shortens it.

- :class:`Receipts`, :func:`stamp_windows`, :func:`stamp_batch`: every finding's
  ``received_at``, the time its first event reached the detector;
- :class:`EarlyConfig`, :class:`EarlyState`, :func:`early_reports`: a model window already
  anomalous before it closes is reported early, as a provisional update of its finding;
- :func:`first_reports`, :func:`detect_seconds`: the latency of each finding's first report,
  per family (model, detection), for ``detector_finding_latency_seconds``.

The pipeline (:mod:`detector.pipeline`) wires them into its step; how long windows wait (the
allowed lateness per source) and the idle watermark are in docs/latency.md.

Imports: polars, the standard library, and the detector's events, findings and scoring
packages. No I/O, no clock.
"""

from detector.timeliness._early import (
    DEFAULT_EARLY_EVERY,
    EarlyConfig,
    EarlyState,
    early_reports,
    first_reports,
)
from detector.timeliness._latency import FAMILIES, Family, detect_seconds, family_of
from detector.timeliness._receipts import RECEIPTS_SCHEMA, Receipts, stamp_batch, stamp_windows

__all__ = [
    "DEFAULT_EARLY_EVERY",
    "FAMILIES",
    "RECEIPTS_SCHEMA",
    "EarlyConfig",
    "EarlyState",
    "Family",
    "Receipts",
    "detect_seconds",
    "early_reports",
    "family_of",
    "first_reports",
    "stamp_batch",
    "stamp_windows",
]
