"""Process-level settings for long runs (the service, replay, training, benchmarks).

Imports: the standard library only. Called from entry points, never from the pure core.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from typing import Final

__all__ = ["GC_THRESHOLDS", "aws_environment", "tune_gc", "worker_pool"]

# CloudTrail decoding allocates millions of short-lived dicts; at CPython's default
# generation-0 threshold (700) the collector runs constantly and its full collections walk
# every live object, costing up to 2x on this workload. Objects alive at start-up (modules,
# the model) are frozen out of collection; cycles are still collected, just less often.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """For the whole process (the service); :func:`detector.archive.replay_gc` is the scoped
    form replay uses, with the same thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def worker_pool(
    workers: int | None = None, *, environ: Mapping[str, str] | None = None
) -> ProcessPoolExecutor:
    """Processes for CPU-bound Python (decoding, SQS calls: threads would share one
    interpreter lock); ``workers`` default to the CPU count. Workers start by ``forkserver``
    (forking a process that runs polars' thread pool can deadlock the child) with the
    collector tuned as here. The forkserver keeps the environment of the moment it started,
    so ``environ`` (e.g. the ``AWS_*`` variables botocore reads) is set in each worker as it
    starts. The pool's pipes are widened (:func:`_widen_pipes`). Shut the pool down when
    done (``with worker_pool() as pool:``)."""
    pool = ProcessPoolExecutor(
        max_workers=workers or os.cpu_count() or 1,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_start_worker,
        initargs=(dict(environ or {}),),
    )
    _widen_pipes(pool)
    return pool


_PIPE_BYTES: Final = 1 << 20  # Linux's default limit for an unprivileged process


def _widen_pipes(pool: ProcessPoolExecutor) -> None:
    """Give a process pool's request and answer pipes 1 MiB buffers instead of 64 KiB (Linux;
    best effort, before the pool's first task; ProcessPoolExecutor has no setting for them).
    A decode process gets ~18 MB of bodies and answers ~12 MB of events per 10,000 messages:
    with wider pipes they cross in 16 times fewer writes and reads, each a switch between the
    two processes (measured: a 10,000-message round trip 36 -> 21 ms, 17 -> 12 ms of CPU on
    this side and 17 -> 13 ms in the worker)."""
    try:
        import fcntl  # POSIX only
    except ImportError:
        return
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    ends = (
        getattr(getattr(pool, "_call_queue", None), "_writer", None),
        getattr(getattr(pool, "_result_queue", None), "_reader", None),
    )
    for end in ends:
        if set_size is not None and end is not None:
            with contextlib.suppress(OSError, ValueError):
                fcntl.fcntl(end.fileno(), set_size, _PIPE_BYTES)


def _start_worker(environ: dict[str, str]) -> None:
    os.environ.update(environ)
    tune_gc()


def aws_environment() -> dict[str, str]:
    """This process's ``AWS_*`` variables: what a worker needs to reach AWS as it does."""
    return {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
