"""Process-level settings for a long replay: the garbage collector and decode processes.

These are edge concerns (the CLI or a benchmark opts in), kept out of :func:`read_events`:

- :func:`replay_gc`: parsing allocates millions of short-lived dicts and strings that never
  form cycles, yet each allocation burst triggers collections that also walk every long-lived
  object. Within the block, what exists on entry is frozen out of the collector's sight and
  collections are rarer; both are restored on exit.
- :func:`decode_process_pool`: parsing is mostly Python code holding the interpreter lock, so
  threads do not add throughput; processes do. The pool starts its workers with
  ``forkserver`` (forking a process that runs polars' thread pool can deadlock the child) and
  applies the same collector settings in each worker.

Imports: the standard library only.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Final

from detector.process import GC_THRESHOLDS, worker_pool

__all__ = ["REPLAY_GC_THRESHOLDS", "decode_process_pool", "replay_gc"]

REPLAY_GC_THRESHOLDS: Final = GC_THRESHOLDS  # one setting for every long run (detector.process)


@contextmanager
def replay_gc(thresholds: tuple[int, int, int] = REPLAY_GC_THRESHOLDS) -> Iterator[None]:
    """Within the block: objects alive on entry are frozen, collections are rarer."""
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


def decode_process_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """A pool to pass as ``read_events(..., decode_executor=...)``; shut it down when done
    (``with decode_process_pool() as pool:``). ``workers`` defaults to the CPU count; each
    worker's collector is tuned as :func:`replay_gc` tunes it (see
    :func:`detector.process.worker_pool`)."""
    return worker_pool(workers)
