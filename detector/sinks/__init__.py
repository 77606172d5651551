"""Where findings leave the detector: the sink port and its implementations.

- :class:`FindingSink`: the port, ``send(findings)`` then ``close()``;
- :class:`FindingMessage`: one serialised finding (id, group = principal, JSON body);
- :class:`SqsFindingSink`: SendMessageBatch to a findings queue (FIFO: deduplicated by finding
  id, ordered per principal), retried until a deadline;
- :class:`JsonlFindingSink`: one JSON line per finding, fsynced per batch;
- :class:`MemoryFindingSink`: the fake.

Errors::

    DetectorError
    └── SinkError    findings not delivered (names them)

Imports: detector.ingest (the SQS sink rides on the queue port), orjson, the standard library.
"""

from detector.sinks._jsonl import JsonlFindingSink
from detector.sinks._memory import MemoryFindingSink
from detector.sinks._port import FindingMessage, FindingSink, SinkError
from detector.sinks._sqs import SqsFindingSink, fifo_token

__all__ = [
    "FindingMessage",
    "FindingSink",
    "JsonlFindingSink",
    "MemoryFindingSink",
    "SinkError",
    "SqsFindingSink",
    "fifo_token",
]
