"""Fixtures shared by every kind of test.

``shared_data`` is the folder of real CloudTrail samples beside the repo (``../shared/data``);
tests that need it skip, with the reason, when a clone does not have it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real CloudTrail samples not present at {SHARED_DATA} (only beside the repo)")
    return SHARED_DATA


def load_stratus(path: Path) -> list[Any]:
    """A Stratus Red Team detonation log: a JSON array of records, or a single record."""
    doc = json.loads(path.read_text())
    return doc if isinstance(doc, list) else [doc]


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
