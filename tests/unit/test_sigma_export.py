"""Our detections as Sigma rules: each export is a valid Sigma rule for pySigma, and, imported
back through our Sigma path, finds the same events as the native detection on every one of the
native detection's positive and negative examples."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sigma.collection import SigmaCollection

from detector.cli import main
from detector.detections import (
    Detection,
    DetectionConfig,
    DetectionState,
    default_detections,
    run_detections,
)
from detector.events import records_to_events
from detector.sigma import SIGMA_FORMS, compile_rules, sigma_rules_of

NOW = datetime(2024, 5, 1, 13, tzinfo=UTC)
NATIVE = {d.id: d for d in default_detections()}
EXPORTED = sigma_rules_of(default_detections())


def test_every_sigma_form_belongs_to_a_shipped_detection() -> None:
    assert set(SIGMA_FORMS) <= set(NATIVE)
    assert {name.removesuffix(".yml") for name in EXPORTED} == set(SIGMA_FORMS)


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_an_export_is_a_valid_sigma_rule(name: str) -> None:
    (rule,) = SigmaCollection.from_yaml(EXPORTED[name]).rules
    native = NATIVE[name.removesuffix(".yml")]
    assert rule.title == native.title
    assert rule.logsource.product == "aws"
    assert rule.logsource.service == "cloudtrail"
    assert {f"{t.namespace}.{t.name}" for t in rule.tags} == {
        f"attack.{t.lower()}" for t in native.mitre
    }


def fired(detection: Detection, batch: tuple[object, ...]) -> list[str]:
    events = records_to_events(batch, origin=detection.id).events
    _, found = run_detections(events, (detection,), DetectionState(), DetectionConfig(), NOW)
    return sorted(event_id for f in found for event_id in f.event_ids)


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_an_export_finds_what_the_native_detection_finds_on_its_examples(name: str) -> None:
    rules = compile_rules([(name, EXPORTED[name])])
    assert not rules.refused, rules.refused
    (imported,) = rules.detections
    native = NATIVE[name.removesuffix(".yml")]
    for batch in native.positives:
        assert fired(imported, batch) == fired(native, batch) != []
    for batch in native.negatives:
        assert fired(imported, batch) == fired(native, batch) == []


def test_the_export_command_writes_the_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["detections", "export-sigma", str(tmp_path / "rules")]) == 0
    written = sorted(p.name for p in (tmp_path / "rules").iterdir())
    assert written == sorted(EXPORTED)
    assert f"{len(EXPORTED)} of {len(NATIVE)} detections" in capsys.readouterr().out


def test_the_docs_list_the_exported_detections() -> None:
    from tests.conftest import REPO_ROOT

    docs = (REPO_ROOT / "docs" / "sigma.md").read_text()
    listed = "\n".join(f"- `{name}`" for name in SIGMA_FORMS)
    assert listed in docs
