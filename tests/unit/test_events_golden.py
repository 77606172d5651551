"""Golden files: tricky hand-written records and the exact row each must become.

Regenerate after a deliberate change with ``UPDATE_GOLDEN=1 pytest tests/unit/test_events_golden.py``
and review the diff: every changed value is a behaviour change.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.events import EVENT_COLUMNS, records_to_events

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "events"
CASES = sorted(p.name.removesuffix(".input.json") for p in GOLDEN.glob("*.input.json"))


def normalized_row(name: str) -> dict[str, Any]:
    record = orjson.loads((GOLDEN / f"{name}.input.json").read_bytes())
    result = records_to_events([record], origin=name)
    assert result.failures == (), [str(f) for f in result.failures]
    row: dict[str, Any] = result.events.row(0, named=True)
    assert list(row) == list(EVENT_COLUMNS)
    return orjson.loads(orjson.dumps(row, option=orjson.OPT_UTC_Z))  # type: ignore[no-any-return]


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 6


@pytest.mark.parametrize("name", CASES)
def test_golden_record(name: str) -> None:
    expected_path = GOLDEN / f"{name}.expected.json"
    row = normalized_row(name)
    if os.environ.get("UPDATE_GOLDEN"):
        expected_path.write_bytes(orjson.dumps(row, option=orjson.OPT_INDENT_2) + b"\n")
    assert row == orjson.loads(expected_path.read_bytes())
