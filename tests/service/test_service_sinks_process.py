"""``detector run`` with every kind of sink at once, killed with SIGKILL after it sent its
findings but before any checkpoint: the restarted service receives the same events again and
sends the same findings again, with the same ids, to every sink (at least once everywhere,
and still one Security Hub finding per id)."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path
from typing import Any

import orjson

from tests.integration.moto_support import SqsAdmin
from tests.integration.test_sinks_aws import bus_to_queue, hub_findings
from tests.service.conftest import Stream
from tests.service.moto_helpers import feed, read_out, wait_until
from tests.service.test_service_process import ServiceProcess, processes, service_env

__all__ = ["processes"]


def file_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [orjson.loads(line)["finding_info"]["uid"] for line in path.read_bytes().splitlines()]


async def test_kill_9_between_send_and_checkpoint_resends_the_same_ids_to_every_sink(
    sqs_admin: SqsAdmin,
    short_stream: Stream,
    trained_model_dir: Path,
    tmp_path: Path,
    processes: list[ServiceProcess],
) -> None:
    expected = set(short_stream.finding_ids)
    assert expected
    endpoint = sqs_admin.endpoint_url
    url = await sqs_admin.create_queue("detector-input", visibility_timeout=3)
    findings_url = await sqs_admin.create_queue("detector-findings")
    bus_target = await bus_to_queue(endpoint, sqs_admin, "security-findings")
    findings_file = tmp_path / "findings.ocsf.jsonl"
    settings = {
        "queue_url": url,
        "findings_queue_url": findings_url,
        "findings_file": str(findings_file),
        "findings_format": "ocsf",
        "security_hub": "true",
        "event_bus": "security-findings",
        "model": str(trained_model_dir),
        "state_dir": str(tmp_path / "state"),
    }
    state = tmp_path / "state"
    first = ServiceProcess(service_env(endpoint, **settings), tmp_path / "first.log")
    processes.append(first)
    await first.consuming()
    # The state folder becomes a file: every checkpoint after the sends fails (even for root),
    # so the kill lands between send and checkpoint, and every message stays undeleted.
    shutil.rmtree(state)
    state.write_text("not a folder")
    await feed(sqs_admin, url, short_stream.bodies)

    async def sent_then_checkpoint_failed() -> bool:
        return set(file_ids(findings_file)) >= expected and bool(
            first.logged("checkpoint failed: its messages stay held and undeleted")
        )

    await wait_until(sent_then_checkpoint_failed, 30, "every finding sent, the checkpoint failed")
    first.kill()
    assert await first.exit_code(timeout=5) == -signal.SIGKILL
    assert (await sqs_admin.depth(url))[1] > 0  # held, undeleted: they will come back
    sent_once = sorted(file_ids(findings_file))
    state.unlink()
    state.mkdir()

    second = ServiceProcess(
        service_env(endpoint, **settings, checkpoint_seconds="1"), tmp_path / "second.log"
    )
    processes.append(second)
    await second.consuming()

    async def consumed() -> bool:
        return await sqs_admin.depth(url) == (0, 0)

    await wait_until(consumed, 40, "the killed process's messages received again and consumed")
    second.proc.send_signal(signal.SIGTERM)
    assert await second.exit_code(timeout=15) == 0

    # Every sink got every finding twice (once per process), under the same ids.
    in_file = sorted(file_ids(findings_file))
    assert in_file == sorted(sent_once * 2)
    assert set(in_file) == expected
    queued = [
        orjson.loads(body)["finding_info"]["uid"]
        for body in await read_out(sqs_admin, findings_url)
    ]
    assert sorted(queued) == in_file
    on_bus = [
        json.loads(body)["detail"]["finding_id"] for body in await read_out(sqs_admin, bus_target)
    ]
    assert sorted(on_bus) == in_file
    # Security Hub keeps one finding per id: the re-send updated, not duplicated.
    hub: list[dict[str, Any]] = await hub_findings(endpoint)
    assert sorted(f["Id"] for f in hub) == sorted(expected)
