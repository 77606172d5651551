"""The state store port's contract, run against the in-memory fake, the local-files store and
the S3 store on a moto server; then what only the shared stores promise (two writers never
both commit), and what only S3 does (SSE-KMS, its checksum fallback, old generations pruned)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from detector.errors import ConfigError, StateConflictError, StateError
from detector.features import FeatureConfig, FeatureState, empty_state, update
from detector.state import (
    InMemoryStateStore,
    LocalStateStore,
    Snapshot,
    StateStore,
    open_state_store,
)
from tests.integration.moto_support import MotoServer
from tests.integration.state_support import BUCKET, S3State, s3_state
from tests.unit.test_features_factory import events, record

CONFIG = FeatureConfig()
Opener = Callable[[], StateStore]  # each call: a new store on the same location


def snapshot(n: int) -> Snapshot:
    frame = pl.DataFrame(
        {
            "principal_key": [f"p{i}" for i in range(n)],
            "kind": pl.Series(["a"] * n, dtype=pl.Enum(["a", "b"])),
            "buckets": pl.Series([[i] * 3 for i in range(n)], dtype=pl.Array(pl.UInt32, 3)),
            "samples": [[f"x{i}"] for i in range(n)],
        }
    )
    return Snapshot({"things": frame, "empty": frame.clear()}, {"watermark": str(n)})


@pytest.fixture
def s3(moto_endpoint: str) -> Iterator[S3State]:
    with s3_state(moto_endpoint) as state:
        yield state


def _opener(kind: str, request: pytest.FixtureRequest, tmp_path: Path, stack: ExitStack) -> Opener:
    if kind == "memory":
        memory = InMemoryStateStore()
        return lambda: memory
    if kind == "local":
        return lambda: LocalStateStore(tmp_path / "state")
    state = stack.enter_context(s3_state(request.getfixturevalue("moto_endpoint")))

    def open_s3() -> StateStore:
        store = state.open()
        stack.callback(store.close)
        return store

    return open_s3


@pytest.fixture(params=["memory", "local", "s3"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    with ExitStack() as stack:
        yield _opener(request.param, request, tmp_path, stack)


@pytest.fixture(params=["local", "s3"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Stores that several processes open on one location: each call is another writer."""
    with ExitStack() as stack:
        yield _opener(request.param, request, tmp_path, stack)


@pytest.fixture
def store(opener: Opener) -> StateStore:
    return opener()


# -- contract: every store --------------------------------------------------------------------


def test_is_a_state_store(store: StateStore) -> None:
    assert isinstance(store, StateStore)


def test_load_before_any_save_is_none(store: StateStore) -> None:
    assert store.load() is None


def test_save_then_load_round_trips_exactly(opener: Opener) -> None:
    snap = snapshot(5)
    opener().save(snap)
    loaded = opener().load()
    assert loaded is not None
    assert loaded.equals(snap)


def test_last_save_wins(store: StateStore) -> None:
    store.save(snapshot(2))
    store.save(snapshot(3))
    loaded = store.load()
    assert loaded is not None
    assert loaded.equals(snapshot(3))


def test_feature_state_round_trips(store: StateStore) -> None:
    state, _, _ = update(empty_state(), events([record(1, 1), record(2, 30)]), CONFIG)
    store.save(state.snapshot(CONFIG))
    loaded = store.load()
    assert loaded is not None
    restored = FeatureState.restore(loaded, CONFIG)
    assert restored.snapshot(CONFIG).equals(state.snapshot(CONFIG))
    assert restored.watermark == state.watermark


def test_a_bad_frame_name_is_refused_before_anything_is_written(store: StateStore) -> None:
    with pytest.raises(StateError, match="frame name"):
        store.save(Snapshot({"../evil": pl.DataFrame()}))
    assert store.load() is None


# -- two writers: the shared stores ---------------------------------------------------------


def test_two_writers_on_an_empty_location_never_both_commit(shared: Opener) -> None:
    first, second = shared(), shared()
    assert first.load() is None
    assert second.load() is None
    first.save(snapshot(1))
    with pytest.raises(StateConflictError, match="another writer committed state generation 1"):
        second.save(snapshot(2))
    loaded = shared().load()
    assert loaded is not None
    assert loaded.equals(snapshot(1))


def test_the_loser_keeps_refusing_and_the_winner_goes_on(shared: Opener) -> None:
    shared().save(snapshot(1))
    winner, loser = shared(), shared()
    winner.load()
    loser.load()
    winner.save(snapshot(2))
    for attempt in (3, 4):
        with pytest.raises(StateConflictError):
            loser.save(snapshot(attempt))
    winner.save(snapshot(5))
    loaded = shared().load()
    assert loaded is not None
    assert loaded.equals(snapshot(5))


def test_a_writer_far_behind_is_refused_too(shared: Opener) -> None:
    # The generation it would write next was pruned long ago: the swap is on the manifest,
    # so it still loses.
    shared().save(snapshot(1))
    winner, stale = shared(), shared()
    winner.load()
    stale.load()
    for n in range(2, 6):
        winner.save(snapshot(n))
    with pytest.raises(StateConflictError, match="generation 5 after this store read generation 1"):
        stale.save(snapshot(9))


def test_a_loser_that_loads_again_takes_over(shared: Opener) -> None:
    shared().save(snapshot(1))
    old_pod, new_pod = shared(), shared()
    old_pod.load()
    new_pod.load()
    new_pod.save(snapshot(2))
    with pytest.raises(StateConflictError):
        old_pod.save(snapshot(3))
    loaded = old_pod.load()  # a restart: what the winner left
    assert loaded is not None
    assert loaded.equals(snapshot(2))
    old_pod.save(snapshot(4))
    with pytest.raises(StateConflictError):
        new_pod.save(snapshot(5))


def test_a_first_save_without_a_load_takes_the_state_as_found(shared: Opener) -> None:
    shared().save(snapshot(1))
    blind = shared()
    blind.save(snapshot(2))
    loaded = shared().load()
    assert loaded is not None
    assert loaded.equals(snapshot(2))


# -- the S3 store ---------------------------------------------------------------------------


def test_open_state_store_picks_the_store_from_the_location(tmp_path: Path, s3: S3State) -> None:
    assert isinstance(open_state_store(tmp_path / "state"), LocalStateStore)
    assert isinstance(open_state_store(str(tmp_path / "state")), LocalStateStore)
    store = s3.open()
    store.close()
    with pytest.raises(ConfigError, match="s3://bucket/prefix"):
        open_state_store("s3:///prefix")
    with pytest.raises(ConfigError, match="KMS key"):
        open_state_store(tmp_path / "state", kms_key_id="alias/detector")


def test_s3_writes_every_object_with_sse_kms_under_the_key(s3: S3State) -> None:
    key_id = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    store = s3.open(kms_key_id=key_id)
    try:
        store.save(snapshot(2))
        store.save(snapshot(3))
    finally:
        store.close()
    keys = s3.keys("prod/state/")
    assert keys
    for key in keys:
        head = s3.client.head_object(Bucket=BUCKET, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms", key
        assert head["SSEKMSKeyId"] == key_id, key


def test_s3_keeps_the_previous_generation_and_prunes_older_ones(s3: S3State) -> None:
    store = s3.open()
    try:
        for n in (1, 2, 3):
            store.save(snapshot(n))
    finally:
        store.close()
    folders = sorted({key.split("/")[2] for key in s3.keys("prod/state/snapshot-")})
    assert [folder[:17] for folder in folders] == ["snapshot-00000002", "snapshot-00000003"]


def test_s3_falls_back_to_the_previous_generation_when_a_checksum_fails(s3: S3State) -> None:
    store = s3.open()
    try:
        store.save(snapshot(1))
        store.save(snapshot(2))
        current = [k for k in s3.keys("prod/state/snapshot-00000002") if "things" in k]
        s3.client.put_object(Bucket=BUCKET, Key=current[0], Body=b"garbage")
        loaded = store.load()
        assert loaded is not None
        assert loaded.equals(snapshot(1))
        for key in s3.keys("prod/state/snapshot-"):
            s3.client.put_object(Bucket=BUCKET, Key=key, Body=b"garbage")
        with pytest.raises(StateError, match="checksum does not match"):
            store.load()
    finally:
        store.close()


def test_s3_refuses_a_manifest_it_cannot_read(s3: S3State) -> None:
    s3.client.put_object(Bucket=BUCKET, Key="prod/state/MANIFEST.json", Body=b'{"format": 99}')
    store = s3.open()
    try:
        with pytest.raises(StateError, match="format 99"):
            store.load()
    finally:
        store.close()


def test_a_local_state_directory_copied_to_s3_is_an_s3_state(tmp_path: Path, s3: S3State) -> None:
    local = LocalStateStore(tmp_path / "state")
    local.save(snapshot(1))
    local.save(snapshot(2))
    for path in (tmp_path / "state").rglob("*"):  # what `aws s3 cp --recursive` does
        if path.is_file() and path.name != ".lock":
            key = f"prod/state/{path.relative_to(tmp_path / 'state').as_posix()}"
            s3.client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
    store = s3.open()
    try:
        loaded = store.load()
        assert loaded is not None
        assert loaded.equals(snapshot(2))
        store.save(snapshot(3))
        store.save(snapshot(4))
    finally:
        store.close()
    folders = {key.split("/")[2] for key in s3.keys("prod/state/snapshot-")}
    assert [folder[:17] for folder in sorted(folders)] == ["snapshot-00000003", "snapshot-00000004"]


def test_a_commit_whose_answer_was_lost_and_retried_is_still_a_commit(s3: S3State) -> None:
    """The manifest put lands, its answer is lost, botocore sends it again: S3 refuses the
    repeat (the ETag it was conditioned on is gone), and the store recognises its own commit."""
    store, other = s3.open(), s3.open()
    lost: list[str] = []

    def lose_the_first_manifest_answer(
        response: Any, request_dict: dict[str, Any], **_: Any
    ) -> float | None:
        status = response[0].status_code if response else None
        if request_dict["url"].endswith("MANIFEST.json") and status == 200 and not lost:
            lost.append(request_dict["url"])
            return 0.0  # retry at once, as after a dropped connection
        return None

    try:
        store.save(snapshot(1))
        other.load()
        store.client.meta.events.register(
            "needs-retry.s3.PutObject", lose_the_first_manifest_answer
        )
        store.save(snapshot(2))  # no StateConflictError: the 412 was its own commit
        assert lost
        store.save(snapshot(3))
        loaded = other.load()
        assert loaded is not None
        assert loaded.equals(snapshot(3))
    finally:
        store.close()
        other.close()


def test_two_prefixes_in_one_bucket_are_two_states(s3: S3State) -> None:
    a, b = s3.open(f"s3://{BUCKET}/a"), s3.open(f"s3://{BUCKET}/b/")
    try:
        a.save(snapshot(1))
        b.save(snapshot(2))
        loaded_a, loaded_b = a.load(), b.load()
    finally:
        a.close()
        b.close()
    assert loaded_a is not None
    assert loaded_b is not None
    assert loaded_a.equals(snapshot(1))
    assert loaded_b.equals(snapshot(2))


def test_a_missing_bucket_is_a_state_error_naming_it(moto_server: MotoServer) -> None:
    moto_server.reset()
    with s3_state(moto_server.endpoint_url) as state:
        store = state.open("s3://no-such-bucket/state")
        try:
            with pytest.raises(
                StateError, match=re.escape("s3://no-such-bucket/state/MANIFEST.json")
            ):
                store.load()
        finally:
            store.close()
