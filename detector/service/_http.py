"""One small HTTP port for operations: ``/healthz``, ``/readyz`` and ``/metrics``.

- ``/healthz``: 200 while the consume loop has ticked within ``stale_after`` seconds, else 503
  (a wedged loop gets the pod restarted by its liveness probe).
- ``/readyz``: 200 once the model is loaded and the queues answered, else 503 with the reason.
- ``/metrics``: Prometheus text exposition.

Only ``GET`` and ``HEAD`` are served (else 405); a request that is not HTTP/1.x is answered 400,
a head longer than :data:`MAX_REQUEST_HEAD` 431, and one not sent within 5 s 408.

A few lines on asyncio streams, so the port shares the service's event loop and needs no
thread. Imports: the standard library and the service's metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from detector.service._metrics import ServiceMetrics

__all__ = ["Health", "OpsServer"]

_PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
# A probe's request is a few hundred bytes; a longer head is answered 431 instead of buffered.
MAX_REQUEST_HEAD: Final = 8192


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
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=MAX_REQUEST_HEAD
        )

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
            refused = True
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            except asyncio.LimitOverrunError:
                response = _response(431, b"request header fields too large\n")
            except TimeoutError:
                response = _response(408, b"request timeout\n")
            else:
                response, refused = self._answer(head)
            writer.write(response)
            await writer.drain()
            if refused:
                await _discard_rest(reader, writer)
        except (asyncio.IncompleteReadError, OSError):
            pass  # the client went away: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _answer(self, head: bytes) -> tuple[bytes, bool]:
        """The response to one request head, and whether the request was refused: 400 when it
        is not HTTP/1.x, 405 for a method other than GET or HEAD, else the route's."""
        line = head.split(b"\r\n", 1)[0]
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not parts[1].startswith(b"/"):
            return _response(400, b"bad request\n"), True
        method, target = parts[0], parts[1]
        if method not in (b"GET", b"HEAD"):
            return _response(405, b"method not allowed\n", extra="Allow: GET, HEAD\r\n"), True
        path = target.decode("latin-1").split("?", 1)[0]
        status, content_type, body = self._route(path)
        return _response(status, body, content_type, with_body=method == b"GET"), False


async def _discard_rest(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read what the client still sends (a body, an oversized head) for a moment before
    closing: closing a socket with unread input resets it, and the client may then never see
    the response it was sent."""
    if writer.can_write_eof():
        writer.write_eof()
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(1):
            for _ in range(16):
                if not await reader.read(65536):
                    break


_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def _response(
    status: int,
    body: bytes,
    content_type: str = "text/plain",
    *,
    extra: str = "",
    with_body: bool = True,
) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    )
    return head.encode() + (body if with_body else b"")
