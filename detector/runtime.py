"""Process-level settings for long runs (the service, replay, training, benchmarks).

Imports: the standard library only. Called from entry points, never from the pure core.
"""

from __future__ import annotations

import gc

__all__ = ["tune_gc"]

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
