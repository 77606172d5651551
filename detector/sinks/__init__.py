"""Where findings leave the detector: the sink port and its implementations.

- :class:`FindingSink`: the port, ``send(findings)`` then ``close()``;
- :class:`FindingMessage`: one serialised finding (id, group = principal, JSON body);
- :class:`SqsFindingSink`: SendMessageBatch to a findings queue (FIFO: deduplicated by finding
  id, ordered per principal), retried until a deadline;
- :class:`JsonlFindingSink`: one JSON line per finding, fsynced per batch;
- :class:`SecurityHubFindingSink`: BatchImportFindings of ASFF documents (one Security Hub
  finding per finding id, updated in place);
- :class:`EventBridgeFindingSink`: PutEvents to a named bus, for routing with rules;
- :class:`FormattedFindingSink`: a queue or file sink fed OCSF or ASFF instead of native JSON;
- :class:`SinkChoice` / :func:`open_sinks`: the sinks a run's flags chose, opened;
  :class:`FanOutFindingSink` sends to several and returns when all have the findings;
- :class:`MemoryFindingSink`: the fake.

Errors::

    DetectorError
    └── SinkError    findings not delivered (names them)

Imports: detector.ingest (the SQS sink rides on the queue port), detector.findings (renderers),
aiobotocore, orjson, the standard library.
"""

from detector.sinks._aws import AwsConfig
from detector.sinks._choice import FanOutFindingSink, SinkChoice, open_sinks
from detector.sinks._eventbridge import (
    EVENT_DETAIL_TYPE,
    EVENT_SOURCE,
    EventBridgeFindingSink,
    event_entry,
    put_batches,
)
from detector.sinks._format import FINDING_FORMATS, FindingFormat, FormattedFindingSink, render
from detector.sinks._jsonl import JsonlFindingSink
from detector.sinks._memory import MemoryFindingSink
from detector.sinks._port import FindingMessage, FindingSink, SinkError
from detector.sinks._securityhub import MAX_IMPORT_BATCH, SecurityHubFindingSink, asff_documents
from detector.sinks._sqs import SqsFindingSink, fifo_token

__all__ = [
    "EVENT_DETAIL_TYPE",
    "EVENT_SOURCE",
    "FINDING_FORMATS",
    "MAX_IMPORT_BATCH",
    "AwsConfig",
    "EventBridgeFindingSink",
    "FanOutFindingSink",
    "FindingFormat",
    "FindingMessage",
    "FindingSink",
    "FormattedFindingSink",
    "JsonlFindingSink",
    "MemoryFindingSink",
    "SecurityHubFindingSink",
    "SinkChoice",
    "SinkError",
    "SqsFindingSink",
    "asff_documents",
    "event_entry",
    "fifo_token",
    "open_sinks",
    "put_batches",
    "render",
]
