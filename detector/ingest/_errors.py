"""Errors of the queue port.

A message that cannot be deleted, released or sent is *data* (a :class:`BatchFailure` in the
:class:`BatchOutcome`); these exceptions are for a queue that cannot be used at all::

    DetectorError
    └── QueueError                 the queue as a whole refused the call (gone, access denied, closed)
        └── QueueUnavailableError  transient failures outlasted the retry policy (receive only)

Imports: detector.errors only.
"""

from __future__ import annotations

from detector.errors import DetectorError

__all__ = ["QueueError", "QueueUnavailableError"]


class QueueError(DetectorError):
    """The queue refused the call as a whole; the message names the queue."""


class QueueUnavailableError(QueueError):
    """Throttling, 5xx or network errors persisted past the retry policy; worth retrying later."""
