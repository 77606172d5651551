"""``detector route``'s settings: flags and ``DETECTOR_*`` variables, as ``detector run``'s
(:data:`ROUTE_OPTIONS` is the one table; ``make docs`` writes it into docs/scale-out.md).

Imports: the standard library and the service's settings helpers (light: no AWS, no polars).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from detector.errors import ConfigError
from detector.service._settings import (
    DEFAULT_METRICS_HOST,
    DEFAULT_METRICS_PORT,
    DEFAULT_REGION,
    Option,
    _level,
    _non_negative_int,
    _port,
    _positive_float,
    _positive_int,
    _url,
    add_arguments,
    resolve_values,
)

__all__ = [
    "ROUTE_OPTIONS",
    "RouteSettings",
    "add_route_arguments",
    "resolve_route_settings",
    "route_options_table",
]

DEFAULT_BATCH_SECONDS: Final = 0.2
DEFAULT_VISIBILITY_TIMEOUT: Final = 60
DEFAULT_ROUTE_RECEIVERS: Final = 4
DEFAULT_GRACE_SECONDS: Final = 10.0


def _stream(text: str) -> str:
    name = text.removeprefix("kinesis://").strip("/")
    if not name or "/" in name:
        raise ValueError("must be a stream name (or kinesis://NAME)")
    return name


ROUTE_OPTIONS: Final[tuple[Option, ...]] = (
    Option("queue_url", "--queue-url", "DETECTOR_QUEUE_URL", _url, None, "required",
           "the input SQS queue (EventBridge puts CloudTrail events on it)", "URL"),
    Option("stream", "--stream", "DETECTOR_STREAM", _stream, None, "required",
           "the Kinesis data stream events are put on, partitioned by principal", "NAME"),
    Option("receivers", "--receivers", "DETECTOR_RECEIVERS", _positive_int,
           DEFAULT_ROUTE_RECEIVERS, str(DEFAULT_ROUTE_RECEIVERS), "long polls in flight at once",
           "N"),
    Option("wait_seconds", "--wait-seconds", "DETECTOR_WAIT_SECONDS", _non_negative_int, 20, "20",
           "long-poll wait of each receive (0..20)", "S"),
    Option("visibility_timeout", "--visibility-timeout", "DETECTOR_VISIBILITY_TIMEOUT",
           _positive_int, DEFAULT_VISIBILITY_TIMEOUT, str(DEFAULT_VISIBILITY_TIMEOUT),
           "invisibility asked for at each receive; a record not accepted within it is left "
           "for SQS to redeliver", "S"),
    Option("batch_seconds", "--batch-seconds", "DETECTOR_BATCH_SECONDS", _positive_float,
           DEFAULT_BATCH_SECONDS, f"{DEFAULT_BATCH_SECONDS:g}",
           "a PutRecords batch is cut at 500 records or when its oldest has waited this long",
           "S"),
    Option("metrics_host", "--metrics-host", "DETECTOR_METRICS_HOST", str, DEFAULT_METRICS_HOST,
           DEFAULT_METRICS_HOST, "address of /healthz, /readyz and /metrics", "HOST"),
    Option("metrics_port", "--metrics-port", "DETECTOR_METRICS_PORT", _port, DEFAULT_METRICS_PORT,
           str(DEFAULT_METRICS_PORT), "port of /healthz, /readyz and /metrics (0: any free one)",
           "PORT"),
    Option("grace_seconds", "--grace-seconds", "DETECTOR_GRACE_SECONDS", _positive_float,
           DEFAULT_GRACE_SECONDS, f"{DEFAULT_GRACE_SECONDS:g}",
           "after SIGTERM/SIGINT: time to put what is pending and exit", "S"),
    Option("log_level", "--log-level", "DETECTOR_LOG_LEVEL", _level, "INFO", "info",
           "debug, info, warning or error (JSON lines on stderr)", "LEVEL"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RouteSettings:
    queue_url: str
    stream: str
    receivers: int = DEFAULT_ROUTE_RECEIVERS
    wait_seconds: int = 20
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
    batch_seconds: float = DEFAULT_BATCH_SECONDS
    metrics_host: str = DEFAULT_METRICS_HOST
    metrics_port: int = DEFAULT_METRICS_PORT
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    log_level: str = "INFO"
    region: str = DEFAULT_REGION
    sqs_endpoint_url: str | None = None
    kinesis_endpoint_url: str | None = None


def add_route_arguments(parser: Any) -> None:
    add_arguments(parser, ROUTE_OPTIONS)


def resolve_route_settings(flags: Mapping[str, Any], environ: Mapping[str, str]) -> RouteSettings:
    values = resolve_values(ROUTE_OPTIONS, flags, environ)
    for name, flag, env in (
        ("queue_url", "--queue-url", "DETECTOR_QUEUE_URL"),
        ("stream", "--stream", "DETECTOR_STREAM"),
    ):
        if name not in values:
            raise ConfigError(f"give {flag} or set {env}")
    base = environ.get("AWS_ENDPOINT_URL") or None
    return RouteSettings(
        **values,
        region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
        sqs_endpoint_url=environ.get("AWS_ENDPOINT_URL_SQS") or base,
        kinesis_endpoint_url=environ.get("AWS_ENDPOINT_URL_KINESIS") or base,
    )


def route_options_table() -> str:
    from detector.service._settings import options_table

    return options_table(ROUTE_OPTIONS)
