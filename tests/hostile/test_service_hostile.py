"""The real service on a moto server under hostile input: poison that once escaped the parser
(deep nesting, forged event times) reaches the dead-letter queue alone, without moving the
watermark; the ops port answers floods of malformed requests and stays up."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from detector.synthetic import envelope
from tests.hostile.conftest import nested
from tests.integration.moto_support import SqsAdmin
from tests.service.conftest import Stream
from tests.service.moto_helpers import feed, read_out, wait_until
from tests.service.test_service_moto import aws_environment, running, settings_for

__all__ = ["aws_environment"]  # the service tests' autouse fixture: credentials for moto


def poison_of(stream: Stream) -> dict[str, bytes]:
    """Bodies that each must fail alone, by name."""
    first = orjson.loads(stream.bodies[0])
    detail = first["detail"]

    def with_detail(event_id: str, **fields: Any) -> bytes:
        return orjson.dumps(envelope(detail | {"eventID": event_id} | fields, event_id))

    deep = with_detail("deep", requestParameters=None).replace(
        b'"requestParameters":null', b'"requestParameters":' + nested(990)
    )
    return {
        "future": with_detail("future", eventTime="2099-12-31T23:59:59Z"),
        "year 9999": with_detail("year-9999", eventTime="9999-12-31T23:59:59Z"),
        "deep": deep,
        "deeper": b'{"detail-type":"AWS API Call via CloudTrail","detail":' + nested(3000) + b"}",
    }


async def test_poison_that_escaped_the_parser_fails_alone_and_moves_no_watermark(
    sqs_admin: SqsAdmin, short_stream: Stream, trained_model_dir: Path, tmp_path: Path
) -> None:
    dlq = await sqs_admin.create_queue("detector-input-dlq")
    url = await sqs_admin.create_queue(
        "detector-input", visibility_timeout=5, dead_letter_queue_url=dlq, max_receive_count=2
    )
    poison = poison_of(short_stream)
    bodies = list(poison.values()) + short_stream.bodies
    settings = settings_for(sqs_admin.endpoint_url, url, tmp_path, trained_model_dir)
    async with running(settings) as run:
        await feed(sqs_admin, url, bodies)

        async def settled() -> bool:
            dead = await sqs_admin.depth(dlq)
            return dead[0] == len(poison) and await sqs_admin.depth(url) == (0, 0)

        await wait_until(settled, 60, "the poison in the DLQ and the input queue empty")
        metrics = run.metrics
        assert metrics.value("detector_events_late_total") == 0
        assert metrics.value("detector_step_failures_total") == 0
        assert metrics.value("detector_events_processed_total") == len(short_stream)
    assert run.exit_code == 0
    assert sorted(await read_out(sqs_admin, dlq)) == sorted(b.decode() for b in poison.values())
    lines = (tmp_path / "findings.jsonl").read_bytes().splitlines()
    found = [orjson.loads(line)["finding_id"] for line in lines]
    assert sorted(found) == sorted(short_stream.finding_ids)


async def request(port: int, data: bytes) -> bytes:
    """The status line the ops port answers ``data`` with."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    return answer.split(b"\r\n", 1)[0]


async def test_the_ops_port_answers_malformed_requests_and_stays_ready(
    sqs_admin: SqsAdmin, trained_model_dir: Path, tmp_path: Path
) -> None:
    url = await sqs_admin.create_queue("detector-input", visibility_timeout=5)
    settings = settings_for(sqs_admin.endpoint_url, url, tmp_path, trained_model_dir)
    async with running(settings) as run:
        assert run.runtime.ops is not None
        port = run.runtime.ops.port
        asked = {
            "post": b"POST /readyz HTTP/1.1\r\nContent-Length: 4\r\n\r\nstop",
            "delete": b"DELETE /metrics HTTP/1.1\r\n\r\n",
            "garbage": b"\x16\x03\x01 not http at all\r\n\r\n",
            "no version": b"GET /readyz\r\n\r\n",
            "oversize": b"GET /readyz HTTP/1.1\r\nX-Pad: " + b"a" * 100_000 + b"\r\n\r\n",
        }
        answers = {k: await request(port, v) for k, v in asked.items()}
        assert answers == {
            "post": b"HTTP/1.1 405 Method Not Allowed",
            "delete": b"HTTP/1.1 405 Method Not Allowed",
            "garbage": b"HTTP/1.1 400 Bad Request",
            "no version": b"HTTP/1.1 400 Bad Request",
            "oversize": b"HTTP/1.1 431 Request Header Fields Too Large",
        }
        flood = await asyncio.gather(*(request(port, asked["oversize"]) for _ in range(50)))
        assert set(flood) == {b"HTTP/1.1 431 Request Header Fields Too Large"}
        ready = await request(port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ready == b"HTTP/1.1 200 OK"
