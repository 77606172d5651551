"""Every detection against its own examples, and the catalogue against its README table.

Each positive example must produce a finding of its detection and of no other; each negative
example must produce no finding at all.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

import detector.detections as detections_package
from detector.detections import (
    Detection,
    DetectionConfig,
    DetectionContext,
    DetectionState,
    Example,
    default_detections,
    run_detections,
)
from detector.events import records_to_events
from detector.findings import Finding

NOW = datetime(2024, 5, 1, 13, 0, tzinfo=UTC)
README = Path(detections_package.__file__).resolve().parent / "README.md"


def findings_of(
    example: Example,
    config: DetectionConfig | None = None,
    context: DetectionContext | None = None,
) -> tuple[Finding, ...]:
    parsed = records_to_events(example, origin="example")
    assert parsed.failures == (), [str(f) for f in parsed.failures]
    _, found = run_detections(
        parsed.events,
        default_detections(),
        DetectionState(),
        config or DetectionConfig(),
        NOW,
        context,
    )
    return found


def _examples(kind: str) -> list[tuple[Detection, Example]]:
    return [
        pytest.param(d, example, id=f"{d.id}-{i}")  # type: ignore[misc]
        for d in default_detections()
        for i, example in enumerate(d.positives if kind == "positive" else d.negatives)
    ]


@pytest.mark.parametrize(("detection", "example"), _examples("positive"))
def test_a_positive_example_fires_its_detection_and_no_other(
    detection: Detection, example: Example
) -> None:
    found = findings_of(example, context=detection.example_context)
    assert {f.kind for f in found} == {detection.id}
    (finding,) = found
    assert finding.severity == detection.severity
    assert finding.mitre == detection.mitre
    assert finding.title == detection.title
    assert finding.event_ids  # the triggering events are attached
    assert set(finding.event_ids) <= {r["eventID"] for r in example}


@pytest.mark.parametrize(("detection", "example"), _examples("negative"))
def test_a_negative_example_fires_nothing(detection: Detection, example: Example) -> None:
    assert [f.kind for f in findings_of(example, context=detection.example_context)] == []


def test_the_public_names_are_the_intended_ones() -> None:
    assert sorted(detections_package.__all__) == sorted(
        [
            "DETECTIONS_VERSION",
            "DETECTION_SCORE",
            "KNOWN_SOURCE_IPS_SCHEMA",
            "Detection",
            "DetectionConfig",
            "DetectionContext",
            "DetectionFailure",
            "DetectionRun",
            "DetectionState",
            "Example",
            "Matcher",
            "Record",
            "default_detections",
            "run_detections",
            "run_detections_isolated",
        ]
    )


def test_detection_ids_are_unique_and_every_detection_has_metadata() -> None:
    detections = default_detections()
    ids = [d.id for d in detections]
    assert len(ids) == len(set(ids))
    for d in detections:
        assert d.title, d.id
        assert d.description, d.id
        assert d.anchors, d.id


def test_default_detections_is_a_fresh_tuple_each_call_not_a_registry() -> None:
    assert isinstance(default_detections(), tuple)
    assert default_detections() == default_detections()


def _readme_table() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        found = re.fullmatch(r"`([a-z0-9_]+)`", cells[0]) if line.startswith("|") else None
        if found:
            rows[found.group(1)] = cells
    return rows


def test_the_readme_table_lists_exactly_the_default_detections() -> None:
    table = _readme_table()
    assert list(table) == [d.id for d in default_detections()]
    for d in default_detections():
        cells = table[d.id]
        assert f"{d.severity:.1f}" in cells, (d.id, "severity")
        assert all(m in " ".join(cells) for m in d.mitre), (d.id, "ATT&CK")


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "Not-Snake"},
        {"severity": 9.5},
        {"mitre": ("TA0005",)},
        {"mitre": ()},
        {"positives": ()},
    ],
)
def test_a_malformed_detection_is_refused(bad: dict[str, object]) -> None:
    template = default_detections()[0]
    fields = {
        "id": template.id,
        "title": template.title,
        "description": template.description,
        "severity": template.severity,
        "mitre": template.mitre,
        "selects": template.selects,
        "matches": template.matches,
        "positives": template.positives,
        "negatives": template.negatives,
    }
    with pytest.raises(ValueError, match="detection"):
        Detection(**(fields | bad))  # type: ignore[arg-type]
