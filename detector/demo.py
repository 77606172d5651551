"""``detector demo``: the main job on the embedded default, end to end, in about two minutes.

1. A moto server on 127.0.0.1 stands in for AWS; the deployment's own CloudFormation template
   (``deploy/cloudformation/detector.yaml``) provisions the KMS key, the encrypted input queue
   with its dead-letter queue and redrive policy, the findings queue and the EventBridge rule
   that sends CloudTrail events to the input queue.
2. A synthetic organisation's clean history is written as CloudTrail writes it (an archive in
   S3 layout) and replayed into a state directory: the principal profiles are warm.
3. The real service (``detector run``'s runtime) starts on that state, against those queues.
4. The attack day goes through EventBridge ``PutEvents`` (a slice around each attack, so the
   moto queue stays shallow), the service turns it into findings sent to every sink the stack
   offers (the findings queue, a JSONL file, Security Hub and the findings event bus), and the
   demo prints them as a table, where each sink's copies went, and which attacks were found.

Needs the development extras (moto, boto3): ``make demo`` installs them.

Imports: the standard library, boto3/aiobotocore/moto (the stand-in for AWS), polars, and the
detector's packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

from detector.archive import ArchiveFilter, LocalFolderSource
from detector.evaluation import evaluate
from detector.events import records_to_events
from detector.findings import finding_from_dict
from detector.pipeline import Pipeline
from detector.replay import replay
from detector.scoring import DEFAULT_MODEL_DIR, load_artifact
from detector.sinks import EVENT_SOURCE, MemoryFindingSink
from detector.state import LocalStateStore
from detector.synthetic import AttackLabel, SyntheticConfig, generate, write_archive

__all__ = ["DemoConfig", "run_demo"]

TEMPLATE: Final = (
    Path(__file__).resolve().parents[1] / "deploy" / "cloudformation" / "detector.yaml"
)
REGION: Final = "us-east-1"
MAX_DEPTH: Final = 60  # messages published but not yet processed: moto's SQS slows past ~100
FINDINGS_BUS: Final = "cloudtrail-detector-findings"
DETAIL_TYPES: Final = {
    "AwsApiCall": "AWS API Call via CloudTrail",
    "AwsConsoleSignIn": "AWS Console Sign In via CloudTrail",
    "AwsServiceEvent": "AWS Service Event via CloudTrail",
}


@dataclass(frozen=True, slots=True)
class DemoConfig:
    out: Path = Path("out/demo")
    seed: int = 0  # the organisation the shipped model was trained on
    history_days: int = 2
    around_attacks: timedelta = timedelta(minutes=10)
    after_last_attack: timedelta = timedelta(minutes=25)  # closes the last windows


def _say(text: str) -> None:
    print(text, flush=True)


def _provision(endpoint: str) -> dict[str, str]:
    import boto3

    session = boto3.Session(
        aws_access_key_id="demo", aws_secret_access_key="demo", region_name=REGION
    )
    cloudformation = session.client("cloudformation", endpoint_url=endpoint)
    cloudformation.create_stack(
        StackName="cloudtrail-detector",
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v}
            for k, v in {
                "EksOidcIssuer": "oidc.eks.us-east-1.amazonaws.com/id/DEMO",
                "SecurityHubFindings": "true",
                "FindingsEventBusName": FINDINGS_BUS,
            }.items()
        ],
        Capabilities=["CAPABILITY_IAM"],
    )
    cloudformation.get_waiter("stack_create_complete").wait(
        StackName="cloudtrail-detector", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    (stack,) = cloudformation.describe_stacks(StackName="cloudtrail-detector")["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    # moto cannot deliver to SNS targets (its PutEvents fails, so the service would keep
    # re-sending): the stack's example rule keeps its pattern here, without its topic target.
    events = session.client("events", endpoint_url=endpoint)
    bus = outputs["FindingsEventBusName"]
    for rule in events.list_rules(EventBusName=bus)["Rules"]:
        targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]
        sns = [t["Id"] for t in targets if t["Arn"].startswith("arn:aws:sns:")]
        if sns:
            events.remove_targets(Rule=rule["Name"], EventBusName=bus, Ids=sns)
    return outputs


def _live_slice(
    records: Sequence[dict[str, Any]], labels: Sequence[AttackLabel], config: DemoConfig
) -> list[dict[str, Any]]:
    """The attack day's records near an attack (and a tail after the last one)."""
    spans = [(lb.start - config.around_attacks, lb.end + config.around_attacks) for lb in labels]
    last = max(lb.end for lb in labels) + config.after_last_attack
    spans.append((max(lb.end for lb in labels), last))
    picked = []
    for record in records:
        moment = datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00"))
        if any(lo <= moment <= hi for lo, hi in spans):
            picked.append(record)
    return picked


async def _publish(events: Any, records: Sequence[dict[str, Any]]) -> None:
    entries = [
        {
            "Source": "aws." + str(r["eventSource"]).split(".", 1)[0],
            "DetailType": DETAIL_TYPES.get(str(r.get("eventType")), DETAIL_TYPES["AwsApiCall"]),
            "Detail": orjson.dumps(r).decode(),
            "Time": datetime.fromisoformat(r["eventTime"].replace("Z", "+00:00")),
        }
        for r in records
    ]
    response = await events.put_events(Entries=entries)
    if response["FailedEntryCount"]:
        raise RuntimeError(f"EventBridge refused {response['FailedEntryCount']} events")


async def _stream(
    config: DemoConfig, endpoint: str, outputs: dict[str, str], live: list[dict[str, Any]]
) -> int:
    from aiobotocore.session import AioSession

    from detector.service import ServiceRuntime, ServiceSettings

    settings = ServiceSettings(
        queue_url=outputs["InputQueueUrl"],
        findings_queue_url=outputs["FindingsQueueUrl"],
        findings_file=config.out / "findings.jsonl",
        security_hub=True,
        event_bus=outputs["FindingsEventBusName"],
        model_dir=DEFAULT_MODEL_DIR,
        state_dir=config.out / "state",
        metrics_host="127.0.0.1",
        metrics_port=0,
        wait_seconds=1,
        batch_seconds=0.5,
        checkpoint_seconds=2.0,
        log_level="WARNING",
        region=REGION,
        endpoint_url=endpoint,
    )
    runtime = ServiceRuntime(settings)
    service = asyncio.create_task(runtime.run())

    def processed() -> float:
        metrics = runtime.metrics
        return metrics.value("detector_messages_processed_total") + metrics.value(
            "detector_messages_failed_total"
        )

    session = AioSession()
    async with session.create_client(
        "events", region_name=REGION, endpoint_url=endpoint,
        aws_access_key_id="demo", aws_secret_access_key="demo",
    ) as events:  # fmt: skip
        await asyncio.wait_for(runtime.consuming.wait(), timeout=60)
        started = time.monotonic()
        for i in range(0, len(live), 10):
            while i - processed() > MAX_DEPTH and not service.done():
                await asyncio.sleep(0.05)
            if service.done():
                break
            await _publish(events, live[i : i + 10])
            if i % 500 == 0:
                _say(f"   published {i:,}/{len(live):,} events, {processed():,.0f} processed")
        while processed() < len(live) and not service.done():
            await asyncio.sleep(0.1)
        rate = len(live) / max(time.monotonic() - started, 1e-9)
        _say(f"   {len(live):,} events through EventBridge -> SQS -> service ({rate:,.0f}/s)")
    await asyncio.sleep(settings.checkpoint_seconds)  # a last checkpoint, then a clean stop
    runtime.stop()
    status: int = await service
    return status


def _tap_bus(endpoint: str, outputs: dict[str, str]) -> str:
    """A queue that receives every finding event on the bus, to count them."""
    import boto3

    session = boto3.Session(
        aws_access_key_id="demo", aws_secret_access_key="demo", region_name=REGION
    )
    sqs = session.client("sqs", endpoint_url=endpoint)
    url = str(sqs.create_queue(QueueName="demo-bus-tap")["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = session.client("events", endpoint_url=endpoint)
    bus = outputs["FindingsEventBusName"]
    events.put_rule(
        Name="demo-bus-tap",
        EventBusName=bus,
        EventPattern=orjson.dumps({"source": [EVENT_SOURCE]}).decode(),
    )
    events.put_targets(Rule="demo-bus-tap", EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}])
    return url


def _drain(sqs: Any, url: str) -> list[bytes]:
    bodies: list[bytes] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [m["Body"].encode() for m in batch]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ],
        )
    return bodies


def _where_findings_went(
    endpoint: str, outputs: dict[str, str], tap: str, findings_file: Path
) -> list[str]:
    """One line per sink: how many findings (distinct ids) it holds."""
    import boto3

    session = boto3.Session(
        aws_access_key_id="demo", aws_secret_access_key="demo", region_name=REGION
    )
    sqs = session.client("sqs", endpoint_url=endpoint)
    hub = session.client("securityhub", endpoint_url=endpoint)
    queued = {orjson.loads(b)["finding_id"] for b in _drain(sqs, outputs["FindingsQueueUrl"])}
    on_bus = {orjson.loads(b)["detail"]["finding_id"] for b in _drain(sqs, tap)}
    in_hub = {
        f["Id"] for page in hub.get_paginator("get_findings").paginate() for f in page["Findings"]
    }
    in_file = {
        orjson.loads(line)["finding_id"]
        for line in findings_file.read_bytes().splitlines()
        if line.strip()
    }
    return [
        f"   SQS queue {outputs['FindingsQueueUrl']}: {len(queued)} findings (native JSON)",
        f"   file {findings_file}: {len(in_file)} findings (JSON Lines)",
        f"   Security Hub: {len(in_hub)} findings (ASFF, one per finding id)",
        f"   EventBridge bus {outputs['FindingsEventBusName']}: {len(on_bus)} events "
        f"(on AWS its example rule sends the high ones to {outputs['FindingsAlertTopicArn']})",
    ]


def _findings_table(findings: list[dict[str, Any]]) -> str:
    rows = sorted(findings, key=lambda f: (-f["severity"], f["first_seen"]))
    lines = [f"{'sev':>4}  {'window (UTC)':<17}  {'principal':<44}  why"]
    for f in rows:
        principal = f["principal"].rsplit("/", 1)[-1][-44:]
        why = ", ".join(f["signals"]) if f["signals"] else f["title"].split(": ", 1)[-1]
        lines.append(
            f"{f['severity']:>4}  {f['window_start'][:16].replace('T', ' '):<17}  "
            f"{principal:<44}  {f['kind']}: {why}"[:200]
        )
    return "\n".join(lines)


async def _demo(config: DemoConfig) -> int:
    from moto.server import ThreadedMotoServer

    started = time.monotonic()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "demo")  # the stand-in accepts any credentials
    config.out.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (config.out / "findings.jsonl").unlink()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        _say(f"1. a local AWS stand-in (moto) on {endpoint}; provisioning {TEMPLATE.name} ...")
        outputs = _provision(endpoint)
        tap = _tap_bus(endpoint, outputs)
        _say(
            f"   input queue {outputs['InputQueueUrl']} (SSE-KMS, DLQ), rule; findings queue, "
            f"Security Hub, event bus {outputs['FindingsEventBusName']} and SNS topic"
        )

        synthetic = SyntheticConfig(baseline_days=config.history_days, attack_days=1)
        trail = generate(synthetic, config.seed)
        attack_day = synthetic.start + timedelta(days=config.history_days)
        history = [r for r in trail.records if r["eventTime"] < f"{attack_day:%Y-%m-%dT%H:%M:%SZ}"]
        live = _live_slice(trail.records[len(history) :], trail.labels, config)
        _say(f"2. history: {len(history):,} CloudTrail records of a synthetic organisation ...")
        archive = config.out / "archive"
        write_archive(history, archive, seed=config.seed)
        store = LocalStateStore(config.out / "state")
        with contextlib.suppress(FileNotFoundError):
            for path in sorted((config.out / "state").glob("**/*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
        summary = await replay(
            LocalFolderSource(archive), str(archive), Pipeline(load_artifact(DEFAULT_MODEL_DIR)),
            MemoryFindingSink(), filter=ArchiveFilter(until=attack_day), store=store,
        )  # fmt: skip
        _say(
            f"   replayed into {config.out / 'state'}: {summary.principals} principal profiles "
            f"warm ({summary.events:,} events, {summary.seconds:.0f} s)"
        )
        _say(f"3. the service starts on that state; 4. the attack day ({len(live):,} events) ...")
        # Security Hub and EventBridge clients find the stand-in through the standard variable.
        previous = os.environ.get("AWS_ENDPOINT_URL")
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        try:
            status = await _stream(config, endpoint, outputs, live)
        finally:
            if previous is None:
                del os.environ["AWS_ENDPOINT_URL"]
            else:
                os.environ["AWS_ENDPOINT_URL"] = previous
        went = _where_findings_went(endpoint, outputs, tap, config.out / "findings.jsonl")
    finally:
        server.stop()
    findings = [
        orjson.loads(line)
        for line in (config.out / "findings.jsonl").read_bytes().splitlines()
        if line.strip()
    ]
    _say(f"\nfindings ({len(findings)}):")
    _say(_findings_table(findings))
    _say("\nwhere the findings went:")
    for line in went:
        _say(line)
    live_events = records_to_events(live, origin="live").events
    report = evaluate(
        trail.labels,
        [finding_from_dict(f) for f in findings],
        live_events,
        window=load_artifact(DEFAULT_MODEL_DIR).window,
        alert_budget=0.0,
    )
    _say("\ninjected attacks (a finding counts when it names the attacker within the attack):")
    for outcome in report.outcomes:
        found = "found" if outcome.detected_by else "MISSED"
        _say(
            f"   {found:<6} {outcome.label.scenario:<26} by {', '.join(outcome.detected_by) or '-'}"
        )
    _say(
        f"findings that point at no attack: {report.false_positives} "
        f"(precision {report.precision:.2f})"
    )
    found_all = report.incident_recall == 1.0
    _say(f"\ndone in {time.monotonic() - started:.0f} s (service exit status {status})")
    return 0 if status == 0 and found_all else 1


def run_demo(config: DemoConfig) -> int:
    return asyncio.run(_demo(config))
