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


@pytest.fixture(scope="session")
def small_trail() -> Any:
    """A small synthetic organisation: 4 clean days, then 1 day with every attack (applications
    at a quarter of their default rate, to keep the suite fast)."""
    from detector.synthetic import SyntheticConfig, generate

    config = SyntheticConfig(baseline_days=4, attack_days=1, app_calls_per_instance_hour=15)
    return generate(config, seed=11)


@pytest.fixture(scope="session")
def small_events(small_trail: Any) -> Any:
    from detector.events import records_to_events

    return records_to_events(small_trail.records, origin="small").events.sort("event_time")


@pytest.fixture(scope="session")
def trained_model_dir(
    tmp_path_factory: pytest.TempPathFactory, small_trail: Any, small_events: Any
) -> Path:
    """A model trained on the small trail's clean days (fewer trees: a test, not a product)."""
    from datetime import timedelta

    import polars as pl

    from detector.training import TrainingConfig, train

    cut = small_trail.config.start + timedelta(days=small_trail.config.baseline_days)
    clean = small_events.filter(pl.col("event_time") < cut)
    folder = tmp_path_factory.mktemp("model") / "small"
    chunks = [clean.slice(i, 20_000) for i in range(0, clean.height, 20_000)]
    train(chunks, folder, TrainingConfig(name="small", n_estimators=60, seed=3), "small trail")
    return folder
