"""Replay gives the stream's answer: the same events, streamed through the service over moto
(EventBridge -> SQS -> `detector run`'s runtime, with its live lateness and early reports) or
replayed from an archive, give the same final findings, with the same ids."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from detector import demo
from detector.archive import ArchiveFilter, EnvelopeJsonlSource, LocalFolderSource
from detector.pipeline import Pipeline
from detector.replay import replay
from detector.scoring import DEFAULT_MODEL_DIR, load_artifact
from detector.sinks import MemoryFindingSink
from detector.state import LocalStateStore
from detector.synthetic import SyntheticConfig, generate, write_archive, write_envelopes

pytestmark = pytest.mark.filterwarnings(
    # moto's CloudFormation skips the policy resource types it does not model (they are
    # checked statically in tests/deploy); with warnings as errors its thread would fail.
    r"ignore:Tried to parse AWS..(SQS..QueuePolicy|Events..EventBusPolicy|SNS..TopicPolicy|S3..BucketPolicy) but it's not "
    r"supported by moto's CloudFormation implementation:UserWarning"
)


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # As `detector demo` runs the service: every client (Security Hub's STS look-up too) on moto.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


async def test_the_stream_and_a_replay_give_the_same_findings(
    endpoint: str, tmp_path: Path
) -> None:
    config = replace(
        demo.DemoConfig(out=tmp_path, history_days=1),
        around_attacks=timedelta(minutes=2),
        after_last_attack=timedelta(minutes=20),
    )
    synthetic = SyntheticConfig(baseline_days=1, attack_days=1)
    trail = generate(synthetic, config.seed)
    attack_day = synthetic.start + timedelta(days=1)
    cut = f"{attack_day:%Y-%m-%dT%H:%M:%SZ}"
    history = [r for r in trail.records if r["eventTime"] < cut]
    live = demo._live_slice(
        [r for r in trail.records if r["eventTime"] >= cut], trail.labels, config
    )
    write_archive(history, tmp_path / "archive", seed=1)
    pipeline = Pipeline(load_artifact(DEFAULT_MODEL_DIR))
    fixed = datetime(2025, 1, 1, tzinfo=UTC)
    await replay(
        LocalFolderSource(tmp_path / "archive"), "history", pipeline, MemoryFindingSink(),
        filter=ArchiveFilter(until=attack_day), store=LocalStateStore(tmp_path / "state"),
        clock=lambda: fixed,
    )  # fmt: skip
    shutil.copytree(tmp_path / "state", tmp_path / "replay-state")

    # The stream: the deployment's template in moto, the service on the warm state.
    outputs = await asyncio.to_thread(demo._provision, endpoint)
    status = await demo._stream(config, endpoint, outputs, live)
    assert status == 0
    sent = [json.loads(line) for line in (tmp_path / "findings.jsonl").read_text().splitlines()]
    # The live service also sends early reports of open windows (provisional): extra updates
    # of ids that its final sends carry too; the replay sends final findings only.
    streamed = {f["finding_id"] for f in sent if not f["provisional"]}

    # The replay: the same events from an archive of envelopes, on the same warm state.
    write_envelopes(live, tmp_path / "live.jsonl", seed=1)
    sink = MemoryFindingSink()
    await replay(
        EnvelopeJsonlSource(tmp_path / "live.jsonl"), "live", pipeline, sink,
        store=LocalStateStore(tmp_path / "replay-state"), clock=lambda: fixed,
    )  # fmt: skip
    replayed = set(sink.finding_ids)

    assert streamed, "the attack slice raised findings"
    assert streamed == replayed
