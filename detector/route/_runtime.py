"""``detector route``: its settings (flags and ``DETECTOR_*`` variables, as ``detector run``'s)
and its runtime: the ops port, the input queue, the Kinesis stream, signals, the log.

Exit status: 0 after a drain, 2 when it cannot start (a missing queue or stream, bad
settings), 1 on a bug. Imports: the standard library, the detector's ingest, the service's
settings helpers, ops port and logging, and this package.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

from detector.errors import ConfigError, DetectorError
from detector.ingest import KinesisConfig, KinesisStream, SqsConfig, SqsQueue
from detector.route._policy import RouterConfig
from detector.route._router import Router
from detector.route._settings import RouteSettings, resolve_route_settings
from detector.service._http import Health, OpsServer
from detector.service._logging import configure_logging, fields
from detector.service._metrics import ServiceMetrics

__all__ = ["route_command"]

_log = logging.getLogger("detector.route")


async def _serve(settings: RouteSettings) -> int:
    metrics = ServiceMetrics()
    health = Health(not_ready={"queues": "not checked", "stream": "not checked"})
    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as stack:
        ops = OpsServer(health, metrics, settings.metrics_host, settings.metrics_port)
        try:
            await ops.start()
        except OSError as err:
            raise ConfigError(f"cannot serve the ops port: {err}") from None
        stack.push_async_callback(ops.close)
        _log.info(
            "starting",
            extra=fields(
                queue=settings.queue_url,
                stream=settings.stream,
                ops=f"{settings.metrics_host}:{ops.port}",
            ),
        )
        queue = await SqsQueue.open(
            SqsConfig(
                settings.queue_url,
                region=settings.region,
                endpoint_url=settings.sqs_endpoint_url,
                max_pool_connections=settings.receivers + 4,
            )
        )
        stack.push_async_callback(queue.close)
        health.ready("queues")
        try:
            stream = await KinesisStream.open(
                KinesisConfig(
                    settings.stream,
                    region=settings.region,
                    endpoint_url=settings.kinesis_endpoint_url,
                )
            )
        except ConfigError:
            raise
        except Exception as err:
            raise ConfigError(f"Kinesis stream {settings.stream} cannot be used: {err}") from None
        stack.push_async_callback(stream.close)
        health.ready("stream")
        router = Router(
            queue,
            stream,
            RouterConfig(
                batch_seconds=settings.batch_seconds,
                visibility_timeout=settings.visibility_timeout,
            ),
            receivers=settings.receivers,
            wait_seconds=settings.wait_seconds,
            metrics=metrics,
            health=health,
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, router.stop)
        _log.info("routing", extra=fields(receivers=settings.receivers))
        task = asyncio.create_task(router.run(), name="router")
        stopped = asyncio.create_task(router.stopped.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
            try:
                await asyncio.wait_for(task, settings.grace_seconds)
            except TimeoutError:
                _log.error("the drain outlived its grace period: the rest comes back from SQS")
                return 1
        finally:
            stopped.cancel()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
    return 0


def route_command(flags: Mapping[str, Any], environ: Mapping[str, str]) -> int:
    """``detector route``: the exit status (0 drained, 1 failed, 2 cannot start)."""
    try:
        settings = resolve_route_settings(flags, environ)
    except ConfigError as err:
        configure_logging("INFO")
        _log.error(f"cannot start: {err}", extra=fields(exit_code=2))
        return 2
    configure_logging(settings.log_level)
    try:
        return asyncio.run(_serve(settings))
    except DetectorError as err:
        _log.error(f"cannot start: {err}", extra=fields(exit_code=2))
        return 2
    except Exception:
        _log.exception("the router failed", extra=fields(exit_code=1))
        return 1
