"""``detector replay`` with several sinks at once (an OCSF file, an ASFF queue, Security Hub and
an EventBridge bus on a moto server): each gets every finding, under the same ids."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from detector.synthetic import write_archive
from tests.integration.moto_support import REGION, TEST_CREDENTIALS, SqsAdmin
from tests.integration.test_sinks_aws import bus_to_queue, hub_findings
from tests.service.moto_helpers import read_out

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, small_trail: Any) -> Path:
    root = tmp_path_factory.mktemp("archive")
    write_archive(
        small_trail.records, root, seed=2, organization_id=small_trail.organisation.org_id
    )
    return root


async def test_a_replay_sends_every_finding_to_every_sink_it_is_given(
    archive: Path, small_trail: Any, sqs_admin: SqsAdmin, tmp_path: Path
) -> None:
    endpoint = sqs_admin.endpoint_url
    queue = await sqs_admin.create_queue("findings")
    bus_target = await bus_to_queue(endpoint, sqs_admin, "security")
    out = tmp_path / "findings.ocsf.jsonl"
    since = small_trail.config.start + timedelta(days=small_trail.config.baseline_days, hours=7)
    until = since + timedelta(hours=2)  # a slice of the attack day keeps moto's queues shallow
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": TEST_CREDENTIALS.access_key_id,
        "AWS_SECRET_ACCESS_KEY": TEST_CREDENTIALS.secret_access_key,
        "AWS_REGION": REGION,
    }
    replayed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "detector.cli", "replay", str(archive),
         "--since", since.isoformat(), "--until", until.isoformat(),
         "--findings-file", str(out), "--findings-queue-url", queue, "--findings-format", "ocsf",
         "--security-hub", "--event-bus", "security"],
        capture_output=True, text=True, cwd=REPO, timeout=600, check=False, env=env,
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    assert [line for line in replayed.stdout.splitlines() if line.startswith("findings ->")] == [
        f"findings -> SQS queue {queue} (ocsf)",
        f"findings -> file {out} (ocsf)",
        "findings -> Security Hub (ASFF)",
        "findings -> EventBridge bus security",
    ]
    in_file = sorted(
        json.loads(line)["finding_info"]["uid"] for line in out.read_text().splitlines()
    )
    assert in_file
    queued = sorted(json.loads(b)["finding_info"]["uid"] for b in await read_out(sqs_admin, queue))
    on_bus = sorted(
        json.loads(b)["detail"]["finding_id"] for b in await read_out(sqs_admin, bus_target)
    )
    in_hub = sorted(f["Id"] for f in await hub_findings(endpoint))
    assert in_file == queued == on_bus == in_hub
