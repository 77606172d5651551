"""Which sinks a run sends findings to, and opening them: the one place ``detector run`` and
``detector replay`` turn their flags into sinks.

:class:`SinkChoice` is the value (a findings queue, a JSONL file, Security Hub, an EventBridge
bus; a format for the queue and the file); :func:`open_sinks` opens each (checking that it is
usable: ConfigError naming it if not) and registers its close on the caller's exit stack.
:class:`FanOutFindingSink` sends to several at once and returns when every one has the
findings, so a caller that checkpoints after ``send`` keeps every sink's delivery promise.

Imports: the standard library, detector.errors, detector.ingest and this package.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from detector.errors import ConfigError
from detector.ingest import SqsConfig
from detector.sinks._aws import AwsConfig
from detector.sinks._eventbridge import EventBridgeFindingSink
from detector.sinks._format import FINDING_FORMATS, FindingFormat, FormattedFindingSink
from detector.sinks._jsonl import JsonlFindingSink
from detector.sinks._port import FindingMessage, FindingSink, SinkError
from detector.sinks._securityhub import SecurityHubFindingSink
from detector.sinks._sqs import SqsFindingSink

__all__ = ["FanOutFindingSink", "SinkChoice", "open_sinks"]

OnFailures = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class SinkChoice:
    """Where findings go; at least one sink. ``findings_format`` applies to the queue and the
    file (Security Hub takes ASFF, EventBridge the native finding as the event's detail)."""

    findings_queue_url: str | None = None
    findings_file: Path | None = None
    security_hub: bool = False
    event_bus: str | None = None
    findings_format: FindingFormat = "native"

    def __post_init__(self) -> None:
        if self.findings_format not in FINDING_FORMATS:
            raise ConfigError(
                f"findings format {self.findings_format!r}: expected one of {FINDING_FORMATS}"
            )
        if not self.names:
            raise ConfigError(
                "nowhere to send findings: give --findings-queue-url, --findings-file, "
                "--security-hub or --event-bus (or several)"
            )

    @property
    def names(self) -> tuple[str, ...]:
        """Where findings go, one line each (for logs and the demo)."""
        fmt = "" if self.findings_format == "native" else f" ({self.findings_format})"
        return tuple(
            name
            for name, chosen in (
                (f"SQS queue {self.findings_queue_url}{fmt}", self.findings_queue_url),
                (f"file {self.findings_file}{fmt}", self.findings_file),
                ("Security Hub (ASFF)", self.security_hub),
                (f"EventBridge bus {self.event_bus}", self.event_bus),
            )
            if chosen
        )


def _check_file(path: Path) -> None:
    if not path.parent.is_dir():
        raise ConfigError(f"findings file {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise ConfigError(f"findings file {path} is a directory")


async def open_sinks(
    choice: SinkChoice,
    stack: AsyncExitStack,
    *,
    region: str,
    sqs_endpoint_url: str | None = None,
    aws_endpoint_url: str | None = None,
    on_failures: OnFailures | None = None,
) -> list[FindingSink]:
    """The chosen sinks, open, each closed by ``stack``. ``sqs_endpoint_url`` is the findings
    queue's endpoint; ``aws_endpoint_url`` Security Hub's, STS's and EventBridge's (None: AWS,
    or botocore's own ``AWS_ENDPOINT_URL_<SERVICE>`` variables)."""

    def counter(name: str) -> Callable[[int], None] | None:
        if on_failures is None:
            return None
        return lambda n: on_failures(name, n)

    def formatted(sink: FindingSink) -> FindingSink:
        if choice.findings_format == "native":
            return sink
        return FormattedFindingSink(sink, choice.findings_format, region=region)

    sinks: list[FindingSink] = []
    if choice.findings_queue_url is not None:
        queue = await SqsFindingSink.open(
            SqsConfig(
                queue_url=choice.findings_queue_url,
                region=region,
                endpoint_url=sqs_endpoint_url,
                max_pool_connections=10,
            )
        )
        stack.push_async_callback(queue.close)
        sinks.append(formatted(queue))
    if choice.findings_file is not None:
        _check_file(choice.findings_file)
        jsonl = JsonlFindingSink(choice.findings_file)
        stack.push_async_callback(jsonl.close)
        sinks.append(formatted(jsonl))
    aws = AwsConfig(region=region, endpoint_url=aws_endpoint_url)
    if choice.security_hub:
        try:
            hub = await SecurityHubFindingSink.open(aws, on_failures=counter("security_hub"))
        except ConfigError:
            raise
        except Exception as err:
            raise ConfigError(f"Security Hub cannot be used: {err}") from None
        stack.push_async_callback(hub.close)
        sinks.append(hub)
    if choice.event_bus is not None:
        bus = await EventBridgeFindingSink.open(
            aws, choice.event_bus, on_failures=counter("event_bus")
        )
        stack.push_async_callback(bus.close)
        sinks.append(bus)
    return sinks


class FanOutFindingSink:
    """Sends every batch to all ``sinks`` at once; returns when all have it, else raises the
    first failure (as :class:`SinkError`, naming every finding some sink did not take)."""

    def __init__(self, sinks: Sequence[FindingSink]) -> None:
        self.sinks = tuple(sinks)

    async def send(self, findings: Sequence[FindingMessage]) -> None:
        results = await asyncio.gather(
            *(sink.send(findings) for sink in self.sinks), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if not errors:
            return
        for error in errors:
            if not isinstance(error, Exception):
                raise error
        ids = sorted({i for e in errors if isinstance(e, SinkError) for i in e.finding_ids})
        raise SinkError(
            "; ".join(f"{type(e).__name__}: {e}" for e in errors),
            ids or [f.finding_id for f in findings],
        ) from errors[0]

    async def close(self) -> None:
        for sink in self.sinks:
            await sink.close()
