"""``detector run`` as a real process against a moto server: SIGTERM mid-stream then restart
processes every event exactly once in effect; kill -9 mid-batch then restart loses nothing;
a missing queue exits 2 naming it. Configured only through environment variables, as in the
container."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.moto_support import SqsAdmin
from tests.service.conftest import Stream
from tests.service.moto_helpers import feed, read_out, split, wait_until

REPO = Path(__file__).resolve().parents[2]


class ServiceProcess:
    """One ``python -m detector.cli run``; its stderr (JSON lines) goes to ``log``."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "detector.cli", "run"],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,  # its worker processes in its group: killed with it
            )
        self.port: int | None = None

    def lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.log.read_bytes().splitlines() if line]

    def logged(self, msg: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["msg"] == msg]

    async def consuming(self, timeout: float = 40) -> None:
        async def started() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}: {self.log.read_text()}")
            return bool(self.logged("consuming"))

        await wait_until(started, timeout, "the service to start consuming")
        ops = self.logged("starting")[-1]["fields"]["ops"]
        self.port = int(ops.rsplit(":", 1)[1])

    def get(self, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()

    async def metric(self, name: str) -> float:
        _, text = await asyncio.to_thread(self.get, "/metrics")
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    async def exit_code(self, timeout: float) -> int:
        deadline = asyncio.get_running_loop().time() + timeout
        while self.proc.poll() is None:
            if asyncio.get_running_loop().time() > deadline:
                self.proc.kill()
                raise AssertionError(f"still running {timeout} s after the signal")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the service and whatever is left of its group (worker processes, the
        forkserver), as when its pod dies."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def processes() -> Iterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    yield started
    for process in started:
        process.kill()


def service_env(endpoint: str, **detector: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DETECTOR_"))}
    env |= {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "DETECTOR_METRICS_HOST": "127.0.0.1",
        "DETECTOR_METRICS_PORT": "0",
        "DETECTOR_WAIT_SECONDS": "1",
        "DETECTOR_BATCH_SECONDS": "0.2",
        "DETECTOR_GRACE_SECONDS": "10",
        "DETECTOR_LOG_LEVEL": "debug",
    }
    return env | {f"DETECTOR_{k.upper()}": v for k, v in detector.items()}


def finding_ids(path: Path) -> list[str]:
    return [orjson.loads(line)["finding_id"] for line in path.read_bytes().splitlines()]


async def queues(admin: SqsAdmin) -> tuple[str, str, str]:
    dlq = await admin.create_queue("detector-input-dlq")
    url = await admin.create_queue(
        "detector-input", visibility_timeout=5, dead_letter_queue_url=dlq, max_receive_count=5
    )
    findings = await admin.create_queue("detector-findings")
    return url, findings, dlq


async def test_sigterm_mid_stream_then_restart_processes_every_event_exactly_once(
    sqs_admin: SqsAdmin,
    tamper_stream: Stream,
    trained_model_dir: Path,
    tmp_path: Path,
    processes: list[ServiceProcess],
) -> None:
    url, findings_url, dlq = await queues(sqs_admin)
    env = service_env(
        sqs_admin.endpoint_url,
        queue_url=url,
        findings_queue_url=findings_url,
        findings_file=str(tmp_path / "findings.jsonl"),
        model=str(trained_model_dir),
        state_dir=str(tmp_path / "state"),
        checkpoint_seconds="1",
    )
    first_slice, second_slice = split(tamper_stream)

    first = ServiceProcess(env, tmp_path / "first.log")
    processes.append(first)
    await first.consuming()
    assert await asyncio.to_thread(first.get, "/readyz") == (200, "ready\n")
    feeding = asyncio.create_task(feed(sqs_admin, url, first_slice))

    async def halfway() -> bool:
        return await first.metric("detector_events_processed_total") >= len(first_slice) // 2

    await wait_until(halfway, 30, "half of the first slice processed")
    first.proc.send_signal(signal.SIGTERM)  # while events keep arriving
    assert await first.exit_code(timeout=15) == 0
    drained = first.logged("drained")[-1]["fields"]
    assert drained["checkpointed"] is True

    second = ServiceProcess(env, tmp_path / "second.log")
    processes.append(second)
    await second.consuming()
    assert second.logged("state restored")
    await feeding

    async def consumed() -> bool:
        return await sqs_admin.depth(url) == (0, 0)

    await wait_until(consumed, 30, "the first slice consumed")
    await feed(sqs_admin, url, second_slice)
    await wait_until(consumed, 30, "the second slice consumed")
    second.proc.send_signal(signal.SIGINT)
    assert await second.exit_code(timeout=15) == 0

    assert await sqs_admin.depth(dlq) == (0, 0)
    in_file = finding_ids(tmp_path / "findings.jsonl")
    assert sorted(in_file) == sorted(tamper_stream.finding_ids)  # no duplicate, none missing
    queued = [orjson.loads(body)["finding_id"] for body in await read_out(sqs_admin, findings_url)]
    assert sorted(queued) == sorted(tamper_stream.finding_ids)
    assert all(set(line) >= {"ts", "level", "logger", "msg"} for line in second.lines())


async def test_kill_9_mid_batch_then_restart_loses_no_event(
    sqs_admin: SqsAdmin,
    tamper_stream: Stream,
    trained_model_dir: Path,
    tmp_path: Path,
    processes: list[ServiceProcess],
) -> None:
    url, _, dlq = await queues(sqs_admin)
    settings = {
        "queue_url": url,
        "findings_file": str(tmp_path / "findings.jsonl"),
        "model": str(trained_model_dir),
        "state_dir": str(tmp_path / "state"),
    }
    first_slice, second_slice = split(tamper_stream)

    first = ServiceProcess(
        service_env(sqs_admin.endpoint_url, **settings, checkpoint_seconds="2"),
        tmp_path / "first.log",
    )
    processes.append(first)
    await first.consuming()
    feeding = asyncio.create_task(feed(sqs_admin, url, first_slice))

    async def busy() -> bool:
        # Killed while it holds messages: the single-process consumer can otherwise checkpoint
        # and delete everything received between two polls.
        return (
            await first.metric("detector_checkpoints_total") >= 1
            and await first.metric("detector_events_processed_total") >= len(first_slice) // 2
            and await first.metric("detector_messages_in_flight") > 0
        )

    await wait_until(busy, 30, "a checkpoint, half of the first slice processed, messages held")
    first.kill()  # while messages are held, processed or not
    assert await first.exit_code(timeout=5) == -signal.SIGKILL
    assert (await sqs_admin.depth(url))[1] > 0  # held, undeleted: they will come back

    second = ServiceProcess(
        service_env(sqs_admin.endpoint_url, **settings, checkpoint_seconds="1"),
        tmp_path / "second.log",
    )
    processes.append(second)
    await second.consuming()
    await feeding

    async def consumed() -> bool:
        return await sqs_admin.depth(url) == (0, 0)

    await wait_until(consumed, 30, "the first slice consumed, the dead process's messages too")
    await feed(sqs_admin, url, second_slice)
    await wait_until(consumed, 30, "the second slice consumed")
    second.proc.send_signal(signal.SIGTERM)
    assert await second.exit_code(timeout=15) == 0

    assert await sqs_admin.depth(dlq) == (0, 0)
    # Findings sent after the last checkpoint were sent again, with the same ids.
    assert set(finding_ids(tmp_path / "findings.jsonl")) == tamper_stream.finding_ids


async def test_a_missing_queue_exits_2_with_a_json_error_naming_it(
    sqs_admin: SqsAdmin, trained_model_dir: Path, tmp_path: Path
) -> None:
    missing = f"{sqs_admin.endpoint_url}/123456789012/no-such-queue"
    env = service_env(
        sqs_admin.endpoint_url,
        queue_url=missing,
        findings_file=str(tmp_path / "findings.jsonl"),
        model=str(trained_model_dir),
        state_dir=str(tmp_path / "state"),
    )
    process = ServiceProcess(env, tmp_path / "service.log")
    assert await process.exit_code(timeout=30) == 2
    error = process.lines()[-1]
    assert error["level"] == "error"
    assert "no-such-queue" in error["msg"]
    assert "does not exist" in error["msg"]
