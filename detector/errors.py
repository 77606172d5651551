"""The detector's exceptions: one root, named ``...Error``.

Per-record problems are *data* (:class:`detector.events.RecordFailure`), never exceptions; these
classes are for conditions that stop an operation as a whole::

    DetectorError
    ├── ConfigError            bad flag, variable or missing resource at start-up
    ├── StateError             a state snapshot that cannot be read or written
    ├── ModelError             a model artifact that cannot be trusted or used
    ├── ArchiveReadError       one archive object could not be read (detector.archive);
    │                          that file becomes a failure and the replay goes on
    ├── QueueError             the queue as a whole refuses (detector.ingest)
    │   └── QueueUnavailableError   receive failed after every retry
    └── SinkError              findings not delivered before the deadline (detector.sinks)

Each lives beside the port it belongs to and subclasses :class:`DetectorError`.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DetectorError", "ModelError", "StateError"]


class DetectorError(Exception):
    """Root of every exception the detector raises on purpose."""


class ConfigError(DetectorError):
    """Configuration is missing or invalid."""


class StateError(DetectorError):
    """A state snapshot is unreadable, of the wrong version, or cannot be written."""


class ModelError(DetectorError):
    """A model artifact is missing, tampered with, or does not match the feature schema."""
