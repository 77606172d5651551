"""SqsFindingSink over SqsQueue over moto, on standard and FIFO findings queues."""

from __future__ import annotations

import json

import pytest

from detector.errors import ConfigError
from detector.sinks import FindingMessage, SqsFindingSink
from tests.integration.moto_support import SqsAdmin

ALICE = "arn:aws:sts::123456789012:assumed-role/Admin/alice@example.com"
BOB = "arn:aws:iam::123456789012:user/bob"


def finding(n: int, principal: str) -> FindingMessage:
    body = json.dumps({"finding_id": f"f-{n:04d}", "principal": principal})
    return FindingMessage(f"f-{n:04d}", principal, body.encode())


async def receive_all(admin: SqsAdmin, url: str) -> list[dict[str, object]]:
    messages: list[dict[str, object]] = []
    while True:
        response = await admin.client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["MessageGroupId", "MessageDeduplicationId"],
        )
        batch = response.get("Messages", [])
        if not batch:
            return messages
        messages += batch
        await admin.client.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ],
        )


async def test_findings_reach_a_standard_queue(sqs_admin: SqsAdmin) -> None:
    url = await sqs_admin.create_queue("findings")
    findings = [finding(n, ALICE if n % 2 else BOB) for n in range(13)]
    async with await SqsFindingSink.open(sqs_admin.config(url)) as sink:
        await sink.send(findings)

    got = await receive_all(sqs_admin, url)
    assert sorted(str(m["Body"]) for m in got) == sorted(f.body.decode() for f in findings)


async def test_a_fifo_queue_gets_each_finding_once_grouped_by_principal(
    sqs_admin: SqsAdmin,
) -> None:
    url = await sqs_admin.create_queue("findings", fifo=True)
    findings = [finding(1, ALICE), finding(2, BOB), finding(3, ALICE)]
    async with await SqsFindingSink.open(sqs_admin.config(url)) as sink:
        await sink.send(findings)
        await sink.send(findings)  # a redelivered input batch produces the same findings again

    got = await receive_all(sqs_admin, url)
    ids = [json.loads(str(m["Body"]))["finding_id"] for m in got]
    assert sorted(ids) == ["f-0001", "f-0002", "f-0003"]
    attributes = {json.loads(str(m["Body"]))["finding_id"]: m["Attributes"] for m in got}
    # The deduplication id carries the finding's revision (its count), so an update is not dropped.
    assert attributes["f-0001"] == {"MessageGroupId": ALICE, "MessageDeduplicationId": "f-0001-1"}
    assert attributes["f-0002"]["MessageGroupId"] == BOB  # type: ignore[index]
    alice = [i for i in ids if attributes[i]["MessageGroupId"] == ALICE]  # type: ignore[index]
    assert alice == ["f-0001", "f-0003"]


async def test_opening_a_sink_on_a_missing_queue_is_a_config_error(sqs_admin: SqsAdmin) -> None:
    url = sqs_admin.endpoint_url + "/123456789012/findings-typo"
    with pytest.raises(ConfigError, match=r"findings-typo .* does not exist"):
        await SqsFindingSink.open(sqs_admin.config(url))
