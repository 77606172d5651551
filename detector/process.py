"""Process-level settings for long runs (the service, replay, training, benchmarks): the garbage
collector's thresholds and the worker processes replay decodes archive objects in.

(Named apart from :mod:`detector.service._runtime`, which wires ``detector run`` together.)

Imports: the standard library only. Called from entry points, never from the pure core.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

__all__ = ["GC_THRESHOLDS", "tune_gc", "worker_pool"]

# CloudTrail decoding allocates millions of short-lived dicts; at CPython's default
# generation-0 threshold (700) the collector runs constantly and its full collections walk
# every live object. Objects alive at start-up (modules, the model) are frozen out of
# collection; cycles are still collected, just less often.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """For the whole process (the service); :func:`detector.archive.replay_gc` is the scoped
    form replay uses, with the same thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def worker_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """Processes for CPU-bound Python (replay's decoding: threads would share one interpreter
    lock); ``workers`` default to the CPU count. Workers start by ``forkserver`` (forking a
    process that runs polars' thread pool can deadlock the child) with the collector tuned as
    here. Shut the pool down when done (``with worker_pool() as pool:``)."""
    return ProcessPoolExecutor(
        max_workers=workers or os.cpu_count() or 1,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=tune_gc,
    )
