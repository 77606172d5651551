"""State stores: what only the local-files store does, and snapshot -> restore -> continue giving
the same rows as an uninterrupted run. The port's contract suite (every store, and two writers
on one location) is tests/integration/test_state_contract.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from detector.errors import StateConflictError, StateError
from detector.features import FeatureConfig, FeatureState, empty_state, flush, update
from detector.state import (
    MANIFEST_NAME,
    InMemoryStateStore,
    LocalStateStore,
    Snapshot,
    StateStore,
)
from tests.unit.test_features_factory import events, record

CONFIG = FeatureConfig()
StoreFactory = Callable[[Path], StateStore]
STORES: dict[str, StoreFactory] = {
    "memory": lambda _: InMemoryStateStore(),
    "local": lambda tmp: LocalStateStore(tmp / "state"),
}


def _snapshot(n: int) -> Snapshot:
    frame = pl.DataFrame(
        {
            "principal_key": [f"p{i}" for i in range(n)],
            "kind": pl.Series(["a"] * n, dtype=pl.Enum(["a", "b"])),
            "buckets": pl.Series([[i] * 3 for i in range(n)], dtype=pl.Array(pl.UInt32, 3)),
            "samples": [[f"x{i}"] for i in range(n)],
        }
    )
    return Snapshot({"things": frame, "empty": frame.clear()}, {"watermark": str(n)})


def test_snapshots_hold_text_not_hash_codes() -> None:
    # Codes are polars hashes, stable within one polars version only: a snapshot keeps the text
    # and restore recomputes them, so a state survives a polars upgrade.
    state, _, _ = update(empty_state(), events([record(1, 1), record(2, 30)]), CONFIG)
    snap = state.snapshot(CONFIG)
    for name, frame in snap.frames.items():
        assert not [c for c in frame.columns if c.endswith("_hash")], name
    restored = FeatureState.restore(snap, CONFIG)
    assert restored.pending.equals(state.pending)
    assert restored.seen_ids.equals(state.seen_ids)
    assert restored.profiles.item_codes.equals(state.profiles.item_codes)
    assert restored.profiles.principals.equals(state.profiles.principals)


# -- local files only ---------------------------------------------------------------------


def test_local_store_keeps_the_previous_snapshot_and_falls_back(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    store.save(_snapshot(1))
    store.save(_snapshot(2))
    store.save(_snapshot(3))
    folders = sorted(p.name for p in tmp_path.glob("snapshot-*"))
    assert folders == ["snapshot-00000002", "snapshot-00000003"]
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["format"] == 1
    assert manifest["previous"]["seq"] == 2
    (tmp_path / "snapshot-00000003" / "things.parquet").write_bytes(b"garbage")
    loaded = store.load()
    assert loaded is not None
    assert loaded.equals(_snapshot(2))


def test_local_store_refuses_what_it_cannot_trust(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    store.save(_snapshot(1))
    (tmp_path / "snapshot-00000001" / "things.parquet").write_bytes(b"garbage")
    with pytest.raises(StateError, match="checksum"):
        store.load()
    (tmp_path / MANIFEST_NAME).write_text('{"format": 99}')
    with pytest.raises(StateError, match="format 99"):
        store.load()
    with pytest.raises(StateError, match="frame name"):
        store.save(Snapshot({"../evil": pl.DataFrame()}))


def test_local_store_takes_over_a_manifest_written_before_commit_ids(tmp_path: Path) -> None:
    LocalStateStore(tmp_path).save(_snapshot(1))
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    del manifest["current"]["id"]
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    store, other = LocalStateStore(tmp_path), LocalStateStore(tmp_path)
    assert store.load() is not None
    assert other.load() is not None
    store.save(_snapshot(2))
    with pytest.raises(StateConflictError):
        other.save(_snapshot(3))


def test_local_store_ignores_a_save_that_died_before_its_manifest(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    store.save(_snapshot(1))
    (tmp_path / ".snapshot-00000002.tmp").mkdir()  # a crash mid-write leaves this behind
    loaded = store.load()
    assert loaded is not None
    assert loaded.equals(_snapshot(1))
    store.save(_snapshot(2))
    loaded = store.load()
    assert loaded is not None
    assert loaded.equals(_snapshot(2))


# -- restore ------------------------------------------------------------------------------


def test_restore_rejects_a_snapshot_of_another_shape() -> None:
    snap = empty_state().snapshot(CONFIG)
    with pytest.raises(StateError, match="ms windows"):
        FeatureState.restore(snap, FeatureConfig(window=timedelta(minutes=10)))
    with pytest.raises(StateError, match="no frame"):
        FeatureState.restore(Snapshot({}, snap.meta), CONFIG)
    with pytest.raises(StateError, match="format"):
        FeatureState.restore(Snapshot(snap.frames, {}), CONFIG)


@pytest.mark.parametrize("where", sorted(STORES))
def test_snapshot_restore_continue_equals_uninterrupted(where: str, tmp_path: Path) -> None:
    batches = [
        [record(1, 1), record(2, 3, ip="198.51.100.4"), record(3, 4, who="bob")],
        [record(4, 9, name="Decrypt", source="kms"), record(5, 2)],  # 5: out of order, on time
        [record(6, 31, ip="198.51.100.4"), record(7, 33, who="bob", region="eu-west-1")],
        [record(8, 12)],  # late: its window closed when 09:31 arrived
        [record(9, 80, name="CreateUser", read_only=False), record(6, 31)],  # 6: redelivered
    ]

    def run(cut: int | None) -> pl.DataFrame:
        store = STORES[where](tmp_path / f"cut{cut}")
        state, out = empty_state(), []
        for i, batch in enumerate(batches):
            if i == cut:
                store.save(state.snapshot(CONFIG))
                loaded = store.load()
                assert loaded is not None
                state = FeatureState.restore(loaded, CONFIG)
            state, rows, _ = update(state, events(batch), CONFIG)
            out.append(rows)
        state, rows, _ = flush(state, CONFIG)
        return pl.concat([*out, rows]).sort("principal_key", "window_start", "late_correction")

    uninterrupted = run(None)
    assert uninterrupted.get_column("late_correction").any()
    for cut in range(1, len(batches)):
        assert_frame_equal(uninterrupted, run(cut), check_exact=True)
