"""docs/findings-formats.md shows one finding in each format: those examples are what the
renderers write today for that finding (the golden detection finding)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from detector.findings import (
    OCSF_VERSION,
    finding_from_json,
    finding_to_asff,
    finding_to_dict,
    finding_to_json,
    finding_to_ocsf,
)
from detector.sinks import FindingMessage, event_entry

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "findings-formats.md"
GOLDEN = REPO / "tests" / "data" / "golden" / "findings" / "detection_v3.json"


def test_the_doc_shows_the_golden_finding_as_the_renderers_write_it() -> None:
    text = DOC.read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", text, flags=re.S)]
    native, ocsf, asff, entry, _pattern = blocks
    finding = finding_from_json(GOLDEN.read_bytes())
    assert native == finding_to_dict(finding)
    assert ocsf == finding_to_ocsf(finding)
    assert asff == finding_to_asff(finding, account_id="111122223333", region="eu-west-1")
    real = event_entry(
        FindingMessage(finding.finding_id, finding.principal, finding_to_json(finding)),
        "cloudtrail-detector-findings",
    )
    assert json.loads(real.pop("Detail")) == native
    assert {k: v for k, v in entry.items() if k != "Detail"} == real
    assert f"OCSF **{OCSF_VERSION}**" in text
    for flag in ("--findings-queue-url", "--findings-file", "--security-hub", "--event-bus"):
        assert f"`{flag}" in text
