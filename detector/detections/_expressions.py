"""The small vocabulary detections are written in: polars expressions over event columns.

- :func:`calls`: events of one service with one of some names (the usual ``selects``);
- :func:`succeeded`: the call did what it asked;
- :func:`param`: a field of ``requestParameters`` by JSON path, parsed only where evaluated;
- :func:`evidence`: the ``evidence`` column from named expressions;
- :func:`inspected`: evidence computed by a Python function, for checks an expression cannot
  say (IAM policy documents); it runs on the pre-selected rows only;
- :func:`where`: a matcher from a condition and evidence, for the many one-line detections;
- :func:`matched_by` / :func:`matched_by_grantees`: a matcher from an inspector;
- :func:`only_with_rows`: a matcher that reads the profile only when it has rows to judge;
- :func:`learned_in_batch`: rows whose key the batch itself showed long enough before them.

Imports: orjson, polars, detector.engine, this package's detection types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import partial
from typing import Any, TypeAlias

import orjson
import polars as pl

from detector.detections._detection import DetectionConfig, DetectionContext, Matcher
from detector.engine import ENGINE

__all__ = [
    "Inspector",
    "calls",
    "evidence",
    "inspected",
    "learned_in_batch",
    "matched_by",
    "matched_by_grantees",
    "only_with_rows",
    "param",
    "succeeded",
    "where",
]

# A function of some event columns (in the order named) returning the evidence of a match, or
# None when the row does not match.
Inspector: TypeAlias = Callable[..., Mapping[str, Any] | None]

_SIGN_IN = "signin.amazonaws.com"


def calls(event_source: str, *event_names: str) -> pl.Expr:
    """Events of ``event_source`` named one of ``event_names``."""
    return (pl.col("event_source") == event_source) & pl.col("event_name").is_in(event_names)


def succeeded() -> pl.Expr:
    """The call did what it asked: no ``errorCode``, and a sign-in event did not answer
    ``Failure`` (failed console sign-ins carry no error code, only that answer)."""
    failed_sign_in = (pl.col("event_source") == _SIGN_IN) & pl.col(
        "response_elements"
    ).str.contains('":"Failure"', literal=True)
    return pl.col("error_code").is_null() & ~failed_sign_in.fill_null(False)


def param(path: str) -> pl.Expr:
    """``requestParameters`` at a JSON path (``"$.attributes.Policy"``): scalars as text
    (``false`` -> ``"false"``), objects and arrays as JSON text, null when absent."""
    return pl.col("request_parameters").str.json_path_match(path)


def evidence(**fields: pl.Expr) -> pl.Expr:
    """The ``evidence`` column: a JSON object of the named expressions (nulls are dropped when
    the finding is assembled)."""
    if not fields:
        return pl.lit("{}", dtype=pl.String).alias("evidence")
    return pl.struct([e.alias(k) for k, e in fields.items()]).struct.json_encode().alias("evidence")


def _dump(found: Mapping[str, Any] | None) -> str | None:
    return None if found is None else orjson.dumps(found).decode()


def inspected(inspect: Inspector, *columns: str) -> pl.Expr:
    """The ``evidence`` column computed by ``inspect(*values of columns)`` row by row.

    Python per row, so use it only after a selective filter: the runner hands matchers the
    pre-selected rows of one detection (a handful per batch), never the whole batch.
    """

    def run(rows: pl.Series) -> pl.Series:
        values = [rows.struct.field(name).to_list() for name in columns]
        found = [_dump(inspect(*row)) for row in zip(*values, strict=True)]
        return pl.Series("evidence", found, dtype=pl.String)

    return pl.struct(*columns).map_batches(run, return_dtype=pl.String).alias("evidence")


def where(condition: pl.Expr, **fields: pl.Expr) -> Matcher:
    """A matcher keeping the rows where ``condition`` holds, with ``fields`` as evidence."""

    def matches(
        events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
    ) -> pl.LazyFrame:
        return events.filter(condition).with_columns(evidence(**fields))

    return matches


def matched_by(inspect: Inspector, *columns: str, condition: pl.Expr | None = None) -> Matcher:
    """A matcher keeping the rows (where ``condition`` holds, default :func:`succeeded`) for
    which ``inspect`` returns evidence."""
    keep = succeeded() if condition is None else condition

    def matches(
        events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
    ) -> pl.LazyFrame:
        return (
            events.filter(keep)
            .with_columns(inspected(inspect, *columns))
            .filter(pl.col("evidence").is_not_null())
        )

    return matches


def matched_by_grantees(inspect: Inspector, *columns: str) -> Matcher:
    """:func:`matched_by` for inspectors of who a change lets in: they take the configured
    trusted account ids first, then the named columns."""

    def matches(
        events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
    ) -> pl.LazyFrame:
        bound = partial(inspect, config.trusted_account_ids)
        return matched_by(bound, *columns)(events, config, context)

    return matches


def only_with_rows(matcher: Matcher) -> Matcher:
    """``matcher`` run only when its selected rows are not empty (else no match).

    Matchers that judge against the profile join it, and a profile may hold millions of items:
    collecting the few selected rows first spares every batch without such rows that cost.
    """

    def matches(
        events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
    ) -> pl.LazyFrame:
        rows = events.collect(engine=ENGINE)
        if rows.is_empty():
            return rows.lazy().with_columns(evidence())
        return matcher(rows.lazy(), config, context)

    return matches


def learned_in_batch(keys: list[str], lag: timedelta) -> pl.Expr:
    """True for the rows whose ``keys`` appeared in the same frame at least ``lag`` earlier:
    in a stream the profile would know them by then (the window of the first occurrence has
    closed), so a large replay batch must not report them again.

    Computed over the candidate rows only (a subset of what the profile learns from): it can
    only leave more to report than the stream would, never less.
    """
    first = pl.col("event_time").min().over(keys)
    return pl.col("event_time") >= first + lag
