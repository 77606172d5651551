"""Suppression and shadow mode in the running service: a replay and the stream with the same
rules suppress the same findings; shadow mode sends nothing to the findings queue (moto
server), and the shadow report counts what the shadow sink received."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.archive import EnvelopeJsonlSource
from detector.cli import main
from detector.errors import ConfigError
from detector.events import records_to_events
from detector.findings import Finding
from detector.ingest import InMemoryQueue, ManualClock
from detector.pipeline import Pipeline
from detector.replay import replay
from detector.service import Consumer, ConsumerConfig, ServiceMetrics
from detector.shadow import read_findings, summarise
from detector.sinks import JsonlFindingSink, MemoryFindingSink
from detector.state import InMemoryStateStore
from detector.suppression import FileRulesSource, Suppressor
from detector.synthetic import write_envelopes
from tests.integration.moto_support import SqsAdmin
from tests.service.conftest import NOW, Stream
from tests.service.helpers import TEST_CONFIG, pump, send_bodies
from tests.service.moto_helpers import feed, read_out, wait_until
from tests.service.test_service_moto import aws_environment, running, settings_for

__all__ = ["aws_environment"]  # the moto tests' credentials, for these tests too

LATER = datetime(2030, 1, 1, tzinfo=UTC)


def findings_of(records: list[dict[str, Any]], pipeline: Pipeline) -> list[Finding]:
    events = records_to_events(records, origin="expected").events
    _, findings, _ = pipeline.step(pipeline.initial_state(), events, NOW)
    return findings


def rules_for(finding: Finding) -> str:
    """A rule that hides one kind of finding for one principal (and so not every finding)."""
    return (
        "rules:\n"
        "  - id: known-pattern\n"
        "    reason: test\n"
        "    owner: tests\n"
        "    match:\n"
        f"      kinds: [{finding.kind}]\n"
        f"      principals: ['{finding.principal}']\n"
    )


def ids_in(path: Path) -> set[str]:
    return {orjson.loads(line)["finding_id"] for line in path.read_bytes().splitlines()}


def audited(path: Path) -> dict[str, str]:
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return {line["finding"]["finding_id"]: line["rule_id"] for line in lines}


async def test_a_replay_and_the_stream_suppress_the_same_findings(
    pipeline: Pipeline,
    tamper_stream: Stream,
    attack_morning: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    wanted = set(tamper_stream.event_ids)
    records = [r for r in attack_morning if r["eventID"] in wanted]
    expected = findings_of(records, pipeline)
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_for(expected[0]))
    hidden = {
        f.finding_id
        for f in expected
        if f.kind == expected[0].kind and f.principal == expected[0].principal
    }
    assert 0 < len(hidden) < len(expected)

    # The stream: the consumer on the in-memory queue.
    queue = InMemoryQueue(clock=ManualClock(NOW))
    await send_bodies(queue, tamper_stream.bodies)
    stream_sink = MemoryFindingSink()
    stream_audit = JsonlFindingSink(tmp_path / "stream-suppressed.jsonl")
    stream_suppressor = Suppressor(FileRulesSource(rules), stream_audit)
    await stream_suppressor.start()
    consumer = Consumer(
        pipeline,
        queue,
        [stream_sink],
        InMemoryStateStore(),
        ConsumerConfig(**TEST_CONFIG),
        clock=ManualClock(NOW),
        metrics=ServiceMetrics(),
        suppressor=stream_suppressor,
    )
    await consumer.start()
    await pump(consumer)
    await stream_audit.close()

    # The replay of the same envelopes.
    archive = tmp_path / "envelopes.jsonl"
    archive.write_bytes(b"\n".join(tamper_stream.bodies) + b"\n")
    replay_sink = MemoryFindingSink()
    replay_audit = JsonlFindingSink(tmp_path / "replay-suppressed.jsonl")
    replay_suppressor = Suppressor(FileRulesSource(rules), replay_audit)
    await replay_suppressor.start()
    summary = await replay(
        EnvelopeJsonlSource(archive),
        "envelopes",
        pipeline,
        replay_sink,
        clock=lambda: LATER,
        decode_processes=0,
        suppressor=replay_suppressor,
    )
    await replay_audit.close()

    stream_hidden = audited(tmp_path / "stream-suppressed.jsonl")
    replay_hidden = audited(tmp_path / "replay-suppressed.jsonl")
    assert set(stream_hidden) == set(replay_hidden) == hidden
    assert set(stream_hidden.values()) == {"known-pattern"}
    assert set(stream_sink.finding_ids) == set(replay_sink.finding_ids)
    assert set(stream_sink.finding_ids) == {f.finding_id for f in expected} - hidden
    assert consumer.metrics.value(
        "detector_findings_suppressed_total", {"rule": "known-pattern"}
    ) == len(hidden)
    assert summary.suppressed_by_rule == {"known-pattern": len(hidden)}


async def test_shadow_mode_sends_nothing_to_the_findings_queue(
    sqs_admin: SqsAdmin,
    short_stream: Stream,
    trained_model_dir: Path,
    tmp_path: Path,
) -> None:
    input_url = await sqs_admin.create_queue("shadow-input", visibility_timeout=5)
    findings_url = await sqs_admin.create_queue("shadow-findings")
    shadow_url = await sqs_admin.create_queue("shadow-shadow")
    settings = settings_for(
        sqs_admin.endpoint_url,
        input_url,
        tmp_path,
        trained_model_dir,
        findings_queue_url=findings_url,  # configured, and left alone in shadow mode
        shadow=True,
        shadow_findings_file=tmp_path / "shadow.jsonl",
        shadow_findings_queue_url=shadow_url,
    )
    async with running(settings) as run:
        await feed(sqs_admin, input_url, short_stream.bodies)

        async def all_processed() -> bool:
            return run.metrics.value("detector_messages_processed_total") >= len(short_stream)

        await wait_until(all_processed, 30, "every message processed and deleted")
    assert run.exit_code == 0
    assert await read_out(sqs_admin, findings_url) == []
    assert not (tmp_path / "findings.jsonl").exists()

    shadow_queue = [
        orjson.loads(body)["finding_id"] for body in await read_out(sqs_admin, shadow_url)
    ]
    findings, bad = read_findings(tmp_path / "shadow.jsonl")
    assert bad == []
    assert sorted(f.finding_id for f in findings) == sorted(shadow_queue)
    assert {f.finding_id for f in findings} == short_stream.finding_ids
    assert run.metrics.value("detector_shadow_mode") == 1
    sent = sum(
        run.metrics.value("detector_findings_total", {"severity": s})
        for s in ("low", "medium", "high")
    )
    assert sent == len(findings)

    report = summarise(findings, principals_per_day=100)
    assert report.messages == len(findings) == len(shadow_queue)
    assert report.findings == len(short_stream.finding_ids)
    assert sum(t.findings for t in report.by_kind.values()) == report.findings
    assert sum(t.messages for t in report.by_day.values()) == report.messages
    assert sum(t.findings for t in report.by_principal.values()) == report.findings
    assert report.principal_days == 100 * report.days

    # The command, with principal-days from the shadow run's own state.
    command = [
        "shadow-report", str(tmp_path / "shadow.jsonl"), "--json",
        "--state-dir", str(tmp_path / "state"), "--model", str(trained_model_dir),
    ]  # fmt: skip
    output, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(errors):
        assert await asyncio.to_thread(main, command) == 0
    document = orjson.loads(output.getvalue())
    assert document["messages"] == report.messages
    assert document["findings"] == report.findings
    # Four minutes close no window: the profile knows nobody yet, so the file's count is used.
    assert document["principal_days_counted"].startswith("counted from the file")
    assert "knows no principal" in errors.getvalue()


async def test_the_service_refuses_to_start_on_an_invalid_rules_file(
    sqs_admin: SqsAdmin, trained_model_dir: Path, tmp_path: Path
) -> None:
    input_url = await sqs_admin.create_queue("bad-rules-input")
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - id: a\n    reason: r\n    owner: o\n    match: {kinds: ['*']}\n")
    settings = settings_for(
        sqs_admin.endpoint_url, input_url, tmp_path, trained_model_dir, suppressions=str(rules)
    )
    with pytest.raises(ConfigError, match=re.escape(f"{rules}:5: ")):
        async with running(settings):
            pass


async def test_the_service_and_detector_replay_suppress_the_same_finding_ids(
    sqs_admin: SqsAdmin,
    pipeline: Pipeline,
    short_stream: Stream,
    attack_morning: list[dict[str, Any]],
    trained_model_dir: Path,
    tmp_path: Path,
) -> None:
    wanted = set(short_stream.event_ids)
    records = [r for r in attack_morning if r["eventID"] in wanted]
    expected = findings_of(records, pipeline)
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_for(expected[0]))
    input_url = await sqs_admin.create_queue("suppress-input", visibility_timeout=5)
    settings = settings_for(
        sqs_admin.endpoint_url,
        input_url,
        tmp_path,
        trained_model_dir,
        suppressions=str(rules),
        suppressions_audit=tmp_path / "service-suppressed.jsonl",
    )
    async with running(settings) as run:
        await feed(sqs_admin, input_url, short_stream.bodies)

        async def all_processed() -> bool:
            return run.metrics.value("detector_messages_processed_total") >= len(short_stream)

        await wait_until(all_processed, 30, "every message processed and deleted")
    assert run.exit_code == 0
    streamed = audited(tmp_path / "service-suppressed.jsonl")
    assert streamed
    assert run.metrics.value(
        "detector_findings_suppressed_total", {"rule": "known-pattern"}
    ) == len(streamed)
    assert run.metrics.value("detector_suppression_rules") == 1

    write_envelopes(records, tmp_path / "live.jsonl")
    replay_args = [
        "replay", str(tmp_path / "live.jsonl"), "--model", str(trained_model_dir),
        "--out", str(tmp_path / "replayed.jsonl"), "--suppressions", str(rules),
        "--suppressions-audit", str(tmp_path / "replay-suppressed.jsonl"),
    ]  # fmt: skip
    assert await asyncio.to_thread(main, replay_args) == 0
    assert audited(tmp_path / "replay-suppressed.jsonl") == streamed
    sent, replayed = (ids_in(tmp_path / name) for name in ("findings.jsonl", "replayed.jsonl"))
    assert sent == replayed
    assert not sent & set(streamed)


def test_shadow_and_suppression_settings_come_from_flags_or_variables(tmp_path: Path) -> None:
    import argparse

    from detector.service import add_run_arguments, resolve_settings

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    queue = ["--queue-url", "https://sqs.eu-west-1.amazonaws.com/111122223333/in"]
    state = ["--state-dir", str(tmp_path)]

    # Shadow mode needs no findings sink: its own defaults to a file in the state directory.
    shadow = resolve_settings(vars(parser.parse_args([*queue, *state, "--shadow"])), {})
    assert shadow.shadow
    assert shadow.shadow_file == tmp_path / "shadow-findings.jsonl"
    from_variable = resolve_settings(vars(parser.parse_args([*queue, *state])), {
        "DETECTOR_SHADOW": "true",
        "DETECTOR_SHADOW_FINDINGS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/shadow",
        "DETECTOR_SUPPRESSIONS": "s3://config/suppressions.yaml",
    })  # fmt: skip
    assert from_variable.shadow
    assert from_variable.shadow_file is None  # a shadow queue alone was given
    assert from_variable.suppressions == "s3://config/suppressions.yaml"
    assert from_variable.audit_file == tmp_path / "suppressed.jsonl"

    with pytest.raises(ConfigError, match="only in shadow mode"):
        resolve_settings(
            vars(
                parser.parse_args([*queue, "--findings-file", "f", "--shadow-findings-file", "s"])
            ),
            {},
        )
    with pytest.raises(ConfigError, match="nowhere to send findings"):
        resolve_settings(vars(parser.parse_args([*queue, "--shadow", "false"])), {})
