"""Signature detections: single API calls (and one count) that are attacks on their own,
run beside the model on the same events and reported as the same :class:`~detector.findings.
Finding` (``kind`` = the detection id).

- :class:`Detection`: one detection as data (id, title, severity, ATT&CK ids, a cheap
  pre-selection, a pure matcher, positive and negative example events);
- :func:`default_detections`: the detections this project ships (see ``README.md`` here for
  the table); no registry: the caller passes the detections it wants;
- :func:`run_detections`: ``(events, detections, state, config, now) -> (state, findings)``,
  pure; :func:`run_detections_isolated` gives a :class:`DetectionRun` where a detection that
  raises fails alone (a :class:`DetectionFailure`); :class:`DetectionState` is a value with
  ``snapshot()``/``restore()``;
- :class:`DetectionConfig`: dedup period, trusted accounts, thresholds;
  :class:`DetectionContext`: what the principal profile knows (known source addresses).

Imports: polars, orjson, detector.events (schema only), detector.findings, detector.errors.
"""

from detector.detections._catalogue import default_detections
from detector.detections._detection import (
    KNOWN_SOURCE_IPS_SCHEMA,
    Detection,
    DetectionConfig,
    DetectionContext,
    Example,
    Matcher,
    Record,
)
from detector.detections._run import (
    DETECTION_SCORE,
    DETECTIONS_VERSION,
    DetectionFailure,
    DetectionRun,
    run_detections,
    run_detections_isolated,
)
from detector.detections._state import DetectionState

__all__ = [
    "DETECTIONS_VERSION",
    "DETECTION_SCORE",
    "KNOWN_SOURCE_IPS_SCHEMA",
    "Detection",
    "DetectionConfig",
    "DetectionContext",
    "DetectionFailure",
    "DetectionRun",
    "DetectionState",
    "Example",
    "Matcher",
    "Record",
    "default_detections",
    "run_detections",
    "run_detections_isolated",
]
