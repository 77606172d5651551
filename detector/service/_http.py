"""One small HTTP port for operations: ``/healthz``, ``/readyz`` and ``/metrics``.

- ``/healthz``: 200 while the consume loop has ticked within ``stale_after`` seconds, else 503
  (a wedged loop gets the pod restarted by its liveness probe).
- ``/readyz``: 200 once the model is loaded and the queues answered, else 503 with the reason.
- ``/metrics``: Prometheus text exposition.

A few lines on asyncio streams, so the port shares the service's event loop and needs no
thread. Imports: the standard library and the service's metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from detector.service._metrics import ServiceMetrics

__all__ = ["Health", "OpsServer"]

_PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Health:
    """What the probes report; the service updates it as it runs."""

    stale_after: float = 60.0
    clock: Callable[[], float] = time.monotonic
    last_tick: float | None = None
    not_ready: dict[str, str] = field(
        default_factory=lambda: {"model": "not loaded", "queues": "not checked"}
    )

    def tick(self) -> None:
        self.last_tick = self.clock()

    def alive(self) -> bool:
        return self.last_tick is not None and self.clock() - self.last_tick <= self.stale_after

    def ready(self, part: str) -> None:
        self.not_ready.pop(part, None)

    def unready(self, part: str, why: str) -> None:
        self.not_ready[part] = why


class OpsServer:
    """Serves the three endpoints on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, health: Health, metrics: ServiceMetrics, host: str, port: int) -> None:
        self._health = health
        self._metrics = metrics
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("ops server not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _route(self, path: str) -> tuple[int, str, bytes]:
        if path == "/healthz":
            ok = self._health.alive()
            return (200 if ok else 503), "text/plain", b"ok\n" if ok else b"loop stalled\n"
        if path == "/readyz":
            reasons = self._health.not_ready
            if not reasons:
                return 200, "text/plain", b"ready\n"
            text = "".join(f"{k}: {v}\n" for k, v in sorted(reasons.items()))
            return 503, "text/plain", text.encode()
        if path == "/metrics":
            return 200, _PROMETHEUS_TEXT, self._metrics.exposition()
        return 404, "text/plain", b"not found\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            parts = request.split(b" ", 2)
            path = parts[1].decode("latin-1").split("?", 1)[0] if len(parts) > 1 else "/"
            status, content_type, body = self._route(path)
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            head = (
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
