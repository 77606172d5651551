"""Where pipeline state lives between runs: one small port, three stores shipped with it.

- :class:`StateStore`: the port, ``load() -> Snapshot | None`` and ``save(snapshot)``;
- :func:`open_state_store`: the store a location names (a directory or ``s3://bucket/prefix``);
- :class:`Snapshot`: named polars frames plus text metadata (the store does not interpret them);
- :class:`LocalStateStore`: a directory of Parquet snapshots switched atomically through a
  checksummed manifest, keeping the previous snapshot;
- :class:`S3StateStore`: the same layout as S3 objects, committed by a conditional put,
  optionally SSE-KMS encrypted;
- :class:`InMemoryStateStore`: the fake, for tests and one-shot replays.

Both shared stores refuse a second writer: a save commits only if the state is still the
generation this store last loaded or saved, else it raises
:class:`~detector.errors.StateConflictError` (see docs/state.md).

Scaling out (a store shared by several replicas, e.g. DynamoDB). Every per-principal frame
carries ``principal_key``, and a window's features depend only on its own principal's events
and profile, so state partitions by principal. A DynamoDB adapter would keep one item per
principal (partition key ``principal_key``: its profile rows, open-window events and a
``version`` number) plus one item per replica for its watermark and recent event ids. Each
replica owns a disjoint set of principals, either by hashing ``principal_key`` onto N
partitions leased to replicas (a lease item per partition, taken with a conditional write), or
by having the ingest route each event to an SQS FIFO queue with ``MessageGroupId`` =
``principal_key``, which delivers one principal's events to one consumer at a time and in
order. A checkpoint is a batch of conditional writes (``TransactWriteItems``, at most 100 items
per transaction, or per-item ``PutItem`` with ``ConditionExpression: version = :expected``)
that bump each touched principal's version; a failed condition means another replica took the
principal over, so this replica drops its copy and reloads. The SQS messages of a batch are
deleted only after its checkpoint succeeded, so a crash replays them and the event-id
deduplication absorbs the overlap. Only principals touched since the last checkpoint are
written, which keeps a checkpoint proportional to activity rather than to the profile size.

Imports: polars, the standard library, botocore (for S3, when a store is opened) and
:mod:`detector.errors`.
"""

from typing import TYPE_CHECKING, Any

from detector.errors import StateConflictError
from detector.state._local import MANIFEST_NAME, STORE_FORMAT_VERSION, LocalStateStore
from detector.state._memory import InMemoryStateStore
from detector.state._open import is_s3_location, open_state_store
from detector.state._port import StateStore
from detector.state._snapshot import Snapshot

if TYPE_CHECKING:
    from detector.state._s3 import S3StateStore

__all__ = [
    "MANIFEST_NAME",
    "STORE_FORMAT_VERSION",
    "InMemoryStateStore",
    "LocalStateStore",
    "S3StateStore",
    "Snapshot",
    "StateConflictError",
    "StateStore",
    "is_s3_location",
    "open_state_store",
]


def __getattr__(name: str) -> Any:
    # botocore is imported only when S3 state is used: replay's decode workers import this
    # package and need not pay for it.
    if name == "S3StateStore":
        from detector.state._s3 import S3StateStore

        return S3StateStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
