"""``detector route``: the stateless stage that partitions the live stream by principal.

It reads the EventBridge-fed SQS queue, derives each event's principal key (the pipeline's
own, :func:`~detector.events.principal_of`) and puts the event on an Amazon Kinesis data
stream with that key as partition key, deleting a message from SQS only once Kinesis accepted
it. Consumers (``detector run --source kinesis://STREAM``) then each own a group of shards,
hence a disjoint set of principals with all of their events, in order. See docs/scale-out.md.

- :func:`route_messages`, :func:`settle`, :func:`batch_due`: the decisions, pure
  (:class:`RouterConfig`);
- :class:`Router`: the loop over the ports (a :class:`~detector.ingest.MessageQueue` in, a
  :class:`RecordWriter` out);
- :func:`route_command`, :data:`ROUTE_OPTIONS`: the CLI runtime and its settings.

Names load on first use, so that building the CLI's parser stays light. Imports: the detector's events, ingest and service (metrics, ops port, logging, settings).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from detector._lazy import lazy_names

if TYPE_CHECKING:
    from detector.route._policy import (
        Pending,
        RouterConfig,
        Routing,
        Settlement,
        batch_due,
        route_messages,
        settle,
    )
    from detector.route._router import RecordWriter, Router, RouterCounts
    from detector.route._runtime import route_command
    from detector.route._settings import (
        ROUTE_OPTIONS,
        RouteSettings,
        add_route_arguments,
        resolve_route_settings,
        route_options_table,
    )

_HOMES = {
    "_policy": (
        "Pending",
        "RouterConfig",
        "Routing",
        "Settlement",
        "batch_due",
        "route_messages",
        "settle",
    ),
    "_router": ("RecordWriter", "Router", "RouterCounts"),
    "_runtime": ("route_command",),
    "_settings": (
        "ROUTE_OPTIONS",
        "RouteSettings",
        "add_route_arguments",
        "resolve_route_settings",
        "route_options_table",
    ),
}
__all__ = [
    "ROUTE_OPTIONS",
    "Pending",
    "RecordWriter",
    "RouteSettings",
    "Router",
    "RouterConfig",
    "RouterCounts",
    "Routing",
    "Settlement",
    "add_route_arguments",
    "batch_due",
    "resolve_route_settings",
    "route_command",
    "route_messages",
    "route_options_table",
    "settle",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
