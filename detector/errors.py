"""The detector's exceptions: one root, named ``...Error``.

Per-record problems are *data* (:class:`detector.events.RecordFailure`), never exceptions; these
classes are for conditions that stop an operation as a whole::

    DetectorError
    ├── ConfigError            bad flag, variable or missing resource at start-up
    ├── StateError             a state snapshot that cannot be read or written
    │   └── StateConflictError      another writer committed first: this one must stop
    ├── ModelError             a model artifact that cannot be trusted or used
    ├── ArchiveReadError       one archive object could not be read (detector.archive);
    │                          that file becomes a failure and the replay goes on
    ├── QueueError             the queue as a whole refuses (detector.ingest)
    │   └── QueueUnavailableError   receive failed after every retry
    └── SinkError              findings not delivered before the deadline (detector.sinks)

Each lives beside the port it belongs to and subclasses :class:`DetectorError`.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DetectorError", "ModelError", "StateConflictError", "StateError"]


class DetectorError(Exception):
    """Root of every exception the detector raises on purpose."""


class ConfigError(DetectorError):
    """Configuration is missing or invalid."""


class StateError(DetectorError):
    """A state snapshot is unreadable, of the wrong version, or cannot be written."""


class StateConflictError(StateError):
    """Another writer committed a state generation after the one this store last read.

    Two processes were writing the same state (two replicas, or an old pod still running beside
    its replacement). The loser must not overwrite the winner's state nor delete the messages its
    own state includes: it stops, and a fresh start loads the winner's state.
    """


class ModelError(DetectorError):
    """A model artifact is missing, tampered with, or does not match the feature schema."""
