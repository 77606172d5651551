"""The polars engine the pipeline's queries run on.

polars' default engine (``"auto"``) runs a query on the streaming engine, which builds a
graph of pipelines and hands work between threads for every query: a fixed cost of about a
millisecond per query however small the input. A pipeline step's queries (the feature step's,
the detections') work on what one micro-batch touches (its events, the windows closing, the
profiles of their principals, the few rows a detection selects), so the in-memory engine,
which runs the same plan in place, costs far less per step. Results are the same: only the
executor differs (see docs/performance.md).

Imports: nothing beyond the standard library.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ENGINE"]

ENGINE: Final = "in-memory"
