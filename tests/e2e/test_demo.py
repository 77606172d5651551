"""``make demo`` end to end: the real command, as a process, on the embedded default.

moto provisioned from deploy/cloudformation/detector.yaml, history replayed into state, the
service fed through EventBridge -> SQS; every injected attack must be found and the service
must stop cleanly. This is also the test that the service runs against the queues the
deployment template creates.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_finds_every_attack(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "detector.cli", "demo", "--out", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "MISSED" not in result.stdout
    assert "service exit status 0" in result.stdout
    findings = [
        json.loads(line) for line in (tmp_path / "demo" / "findings.jsonl").read_text().splitlines()
    ]
    kinds = {f["kind"] for f in findings}
    assert "model_anomaly" in kinds
    assert "cloudtrail_logging_stopped" in kinds
    assert (tmp_path / "demo" / "state").is_dir()
    # Every sink holds every finding: one line per sink, each with the same count.
    went = result.stdout.split("where the findings went:", 1)[1].splitlines()[1:5]
    assert [line.split(":", 1)[0].split()[0] for line in went] == [
        "SQS",
        "file",
        "Security",
        "EventBridge",
    ]
    distinct = len({f["finding_id"] for f in findings})
    assert {int(line.rsplit(": ", 1)[1].split()[0]) for line in went} == {distinct}
