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
