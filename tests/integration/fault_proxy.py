"""An HTTP proxy in front of moto that injects the faults SQS produces under load.

moto answers every call correctly (or fails at random under concurrency); to test retries
deterministically, the proxy is told which call fails how: a whole call with an HTTP status and
an AWS error code (throttling, 5xx), or chosen entries of a batch call, which it then removes
from the request it forwards and reports as failed in the response, exactly as SQS reports a
partial batch failure. Calls it has no fault for are forwarded untouched. Only the JSON
protocol (botocore's SQS default) is understood.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class Fault:
    """What to do to the next call of ``operation`` (e.g. "SendMessageBatch")."""

    operation: str
    status: int = 200
    code: str = ""
    failed_entries: dict[str, tuple[str, bool]] = field(default_factory=dict)
    """batch entry Id -> (error code, sender fault)"""


@dataclass
class Seen:
    operation: str
    request: dict[str, Any]


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.endpoint_url = ""
        self._session: aiohttp.ClientSession | None = None

    def inject(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def calls(self, operation: str) -> list[dict[str, Any]]:
        return [seen.request for seen in self.seen if seen.operation == operation]

    def _next_fault(self, operation: str) -> Fault | None:
        for index, fault in enumerate(self.faults):
            if fault.operation == operation:
                return self.faults.pop(index)
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        operation = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        raw = await request.read()
        self.seen.append(Seen(operation, json.loads(raw) if raw else {}))  # as the client sent it
        document = json.loads(raw) if raw else {}
        fault = self._next_fault(operation)
        if fault is not None and fault.status != 200:
            return _error(fault.status, fault.code)
        removed: list[dict[str, Any]] = []
        forward = True
        if fault is not None and fault.failed_entries:
            kept = []
            for entry in document.get("Entries", []):
                if entry["Id"] in fault.failed_entries:
                    code, sender_fault = fault.failed_entries[entry["Id"]]
                    removed.append(
                        {
                            "Id": entry["Id"],
                            "Code": code,
                            "SenderFault": sender_fault,
                            "Message": "injected",
                        }
                    )
                else:
                    kept.append(entry)
            document["Entries"] = kept
            raw = json.dumps(document).encode()
            forward = bool(kept)
        if forward:
            status, body, content_type = await self._forward(request, raw)
        else:  # every entry failed: SQS answers without doing anything
            status, body, content_type = 200, b"{}", "application/x-amz-json-1.0"
        if removed:
            answer = json.loads(body) if body else {}
            answer.setdefault("Successful", [])
            answer["Failed"] = answer.get("Failed", []) + removed
            body = json.dumps(answer).encode()
        return web.Response(status=status, body=body, content_type=content_type)

    async def _forward(self, request: web.Request, raw: bytes) -> tuple[int, bytes, str]:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=raw
        ) as response:
            body = await response.read()
            return response.status, body, response.content_type


def _error(status: int, code: str) -> web.Response:
    body = json.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": f"injected {code}"})
    return web.Response(
        status=status,
        body=body.encode(),
        content_type="application/x-amz-json-1.0",
        headers={"x-amzn-query-error": f"{code};{'Sender' if status < 500 else 'Receiver'}"},
    )


@asynccontextmanager
async def running_fault_proxy(upstream: str) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(upstream)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    proxy.endpoint_url = f"http://{host}:{port}"
    async with aiohttp.ClientSession() as session:
        proxy._session = session
        try:
            yield proxy
        finally:
            await runner.cleanup()
