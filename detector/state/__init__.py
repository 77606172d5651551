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

Scaling out does not share a store: each Kinesis consumer (docs/scale-out.md) owns whole
principals and its own state location, and the one-writer rule above keeps two consumers
started on the same shards from both committing.

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
