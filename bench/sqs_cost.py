"""Client CPU per message of the SQS adapter and the SQS findings sink, beside bare aiobotocore.

    python -m bench.sqs_cost [--rounds 30] [--depth 50] [--endpoint-url http://127.0.0.1:5000]

aiobotocore costs milliseconds of client CPU per API call, so the adapter's overhead must stay
small beside it. Against one moto server (started in another process, so that its CPU is not
counted, unless ``--endpoint-url`` names one already running) this measures
``time.process_time()`` per message of:

- consume: ``SqsQueue.receive(10)`` + ``SqsQueue.delete(batch)`` until ``--depth`` messages are
  consumed, beside a bare aiobotocore ReceiveMessage(10) + DeleteMessageBatch loop asking for
  the same system attributes (the service needs SentTimestamp and ApproximateReceiveCount);
- produce: ``SqsFindingSink.send(10 findings)`` beside a bare SendMessageBatch of 10.

The queue is refilled to ``--depth`` (and the findings queue drained) before every round, outside
the measurement: moto slows as a queue grows, so every variant sees the same shallow queue.
Variants alternate round by round; the first round of each is a warm-up. The figure is the
ratio adapter / bare (target <= 1.2).

Not part of the test suite. Imports: the standard library, aiobotocore, moto (its server, run
as a subprocess) and the detector.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiobotocore.session import AioSession

from detector.ingest import SqsConfig, SqsQueue, StaticCredentials
from detector.sinks import FindingMessage, SqsFindingSink

REGION = "us-east-1"
CREDENTIALS = StaticCredentials("bench", "bench")
ATTRIBUTES = ["SentTimestamp", "ApproximateReceiveCount", "MessageGroupId"]


def envelope(n: int) -> str:
    """An EventBridge envelope of a CloudTrail record, about 1.3 kB like the real ones."""
    detail = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:alice",
            "arn": "arn:aws:sts::123456789012:assumed-role/Admin/alice",
            "accountId": "123456789012",
            "sessionContext": {"attributes": {"creationDate": "2024-05-01T12:00:00Z"}},
        },
        "eventTime": "2024-05-01T12:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "awsRegion": REGION,
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.amzn.2",
        "requestParameters": {"bucketName": "reports", "key": f"2024/05/{n:06d}.csv"},
        "responseElements": None,
        "requestID": f"REQ{n:013d}",
        "eventID": f"00000000-0000-4000-8000-{n:012d}",
        "readOnly": True,
        "eventType": "AwsApiCall",
        "recipientAccountId": "123456789012",
    }
    return json.dumps(
        {
            "version": "0",
            "id": f"11111111-2222-4333-8444-{n:012d}",
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.s3",
            "account": "123456789012",
            "time": "2024-05-01T12:00:00Z",
            "region": REGION,
            "resources": [],
            "detail": detail,
        }
    )


def finding(n: int) -> FindingMessage:
    body = json.dumps(
        {
            "finding_id": f"{n:032x}",
            "principal": "arn:aws:sts::123456789012:assumed-role/Admin/alice",
            "kind": "model",
            "score": 0.91,
            "window_end": "2024-05-01T12:05:00Z",
            "features": {"distinct_event_names_by_principal_1h": 41, "error_rate_1h": 0.3},
        }
    )
    return FindingMessage(
        f"{n:032x}", "arn:aws:sts::123456789012:assumed-role/Admin/alice", body.encode()
    )


# -- the moto server ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def moto_server(endpoint_url: str | None) -> Iterator[str]:
    if endpoint_url is not None:
        yield endpoint_url
        return
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1) as reply:
                    reply.read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("moto server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(10)


# -- measurement ----------------------------------------------------------------------------


@dataclass
class Variant:
    name: str
    run: Callable[[], Awaitable[int]]  # one measured round; returns messages handled
    api_calls_per_round: int
    cpu_per_message: list[float] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(self.cpu_per_message)

    def mean(self) -> float:
        return statistics.fmean(self.cpu_per_message)


async def measure(variant: Variant, prepare: Callable[[], Awaitable[None]], keep: bool) -> None:
    await prepare()
    gc.collect()
    started = time.process_time()
    handled = await variant.run()
    elapsed = time.process_time() - started
    if keep:
        variant.cpu_per_message.append(elapsed / handled)


async def bench(endpoint_url: str, rounds: int, depth: int) -> list[tuple[Variant, Variant]]:
    session = AioSession()
    async with (
        session.create_client(
            "sqs",
            region_name=REGION,
            endpoint_url=endpoint_url,
            aws_access_key_id=CREDENTIALS.access_key_id,
            aws_secret_access_key=CREDENTIALS.secret_access_key,
        ) as admin,
        AioSession().create_client(
            "sqs",
            region_name=REGION,
            endpoint_url=endpoint_url,
            aws_access_key_id=CREDENTIALS.access_key_id,
            aws_secret_access_key=CREDENTIALS.secret_access_key,
        ) as bare,
    ):
        events_url = (await admin.create_queue(QueueName="bench-events"))["QueueUrl"]
        findings_url = (await admin.create_queue(QueueName="bench-findings"))["QueueUrl"]

        def config(url: str) -> SqsConfig:
            return SqsConfig(
                queue_url=url, region=REGION, endpoint_url=endpoint_url, credentials=CREDENTIALS
            )

        bodies = [envelope(n) for n in range(depth)]

        async def drain(url: str) -> None:
            # PurgeQueue is allowed once a minute: receive and delete instead.
            while True:
                response = await admin.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                )
                messages = response.get("Messages", [])
                if not messages:
                    return
                await admin.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )

        async def refill() -> None:
            await drain(events_url)
            for start in range(0, depth, 10):
                entries = [
                    {"Id": str(i), "MessageBody": body}
                    for i, body in enumerate(bodies[start : start + 10])
                ]
                await admin.send_message_batch(QueueUrl=events_url, Entries=entries)

        async def purge_findings() -> None:
            await drain(findings_url)

        findings = [finding(n) for n in range(depth)]

        async with (
            SqsQueue(config(events_url)) as queue,
            await SqsFindingSink.open(config(findings_url)) as sink,
        ):

            async def ours_consume() -> int:
                handled = 0
                while handled < depth:
                    batch = await queue.receive(10, wait_seconds=0)
                    outcome = await queue.delete(batch)
                    handled += len(outcome.succeeded)
                return handled

            async def bare_consume() -> int:
                handled = 0
                while handled < depth:
                    response = await bare.receive_message(
                        QueueUrl=events_url,
                        MaxNumberOfMessages=10,
                        WaitTimeSeconds=0,
                        MessageSystemAttributeNames=ATTRIBUTES,
                    )
                    messages = response.get("Messages", [])
                    entries = [
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ]
                    if entries:
                        result = await bare.delete_message_batch(
                            QueueUrl=events_url, Entries=entries
                        )
                        handled += len(result.get("Successful", []))
                return handled

            async def ours_produce() -> int:
                for start in range(0, depth, 10):
                    await sink.send(findings[start : start + 10])
                return depth

            async def bare_produce() -> int:
                for start in range(0, depth, 10):
                    entries: list[dict[str, Any]] = [
                        {"Id": str(i), "MessageBody": f.body.decode()}
                        for i, f in enumerate(findings[start : start + 10])
                    ]
                    await bare.send_message_batch(QueueUrl=findings_url, Entries=entries)
                return depth

            calls = -(-depth // 10)
            consume = (
                Variant("SqsQueue receive+delete", ours_consume, 2 * calls),
                Variant("bare receive+DeleteMessageBatch", bare_consume, 2 * calls),
            )
            produce = (
                Variant("SqsFindingSink.send", ours_produce, calls),
                Variant("bare SendMessageBatch", bare_produce, calls),
            )
            for round_number in range(rounds + 1):
                keep = round_number > 0  # round 0 warms up both
                order = (0, 1) if round_number % 2 else (1, 0)
                for index in order:
                    await measure(consume[index], refill, keep)
                for index in order:
                    await measure(produce[index], purge_findings, keep)
    return [consume, produce]


def report(pairs: list[tuple[Variant, Variant]], rounds: int, depth: int) -> None:
    print(f"client CPU per message (time.process_time), {rounds} rounds, queue depth {depth}")
    print()
    header = f"{'variant':<34} {'calls/round':>11} {'median µs/msg':>14} {'mean µs/msg':>12}"
    print(header)
    print("-" * len(header))
    for ours, bare in pairs:
        for variant in (ours, bare):
            print(
                f"{variant.name:<34} {variant.api_calls_per_round:>11} "
                f"{variant.median() * 1e6:>14.0f} {variant.mean() * 1e6:>12.0f}"
            )
        per_round = [o / b for o, b in zip(ours.cpu_per_message, bare.cpu_per_message, strict=True)]
        print(
            f"{'  ratio ours / bare (target <= 1.2)':<34} {'':>11} "
            f"{ours.median() / bare.median():>14.2f} "
            f"{statistics.median(per_round):>12.2f}  (ratio of medians; median of ratios)"
        )
        print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--endpoint-url", default=None, help="a running moto server")
    args = parser.parse_args(argv)
    with moto_server(args.endpoint_url) as endpoint_url:
        pairs = asyncio.run(bench(endpoint_url, args.rounds, args.depth))
    report(pairs, args.rounds, args.depth)


if __name__ == "__main__":
    main()
