"""The README says what the code does: its tables are checked against the code."""

from __future__ import annotations

import re
from pathlib import Path

from detector.events import EVENT_COLUMNS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def table_first_column(heading: str) -> list[str]:
    """The backquoted names in the first column of the first table after ``heading``."""
    section = README.split(heading, 1)[1]
    rows = re.findall(r"^\| `([^`]+)` \|", section.split("\n\n|", 1)[1].split("\n\n", 1)[0], re.M)
    return rows


def test_the_event_schema_table_is_the_schema() -> None:
    assert table_first_column("## The event model") == list(EVENT_COLUMNS)


def test_the_detection_table_lists_the_shipped_detections() -> None:
    from detector.detections import default_detections

    assert table_first_column("## Signature detections") == [d.id for d in default_detections()]


def test_the_service_options_table_is_the_services() -> None:
    from detector.service import options_table

    assert options_table() in README
