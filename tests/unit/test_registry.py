"""The registry on a local folder and in memory: publish, list, promote, roll back, fetch and
verify; the pointer's moves and the reload decision as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from detector.errors import ConfigError, ModelError
from detector.registry import (
    LocalObjectStore,
    MemoryObjectStore,
    ModelRegistry,
    Pointer,
    promote,
    reload_decision,
    rollback,
    split_model_url,
)
from tests.model_versions import model_copy

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_promote_keeps_the_running_version_for_rollback() -> None:
    first = promote(None, "a@000000000001", T0)
    second = promote(first, "b@000000000002", T0 + timedelta(hours=1))
    third = promote(second, "c@000000000003", T0 + timedelta(hours=2))
    assert third == Pointer(
        "c@000000000003", ("b@000000000002", "a@000000000001"), "2026-01-05T11:00:00Z"
    )
    back = rollback(third, T0 + timedelta(hours=3))
    assert (back.version, back.previous) == ("b@000000000002", ("a@000000000001",))
    assert rollback(back, T0).version == "a@000000000001"


def test_promoting_the_running_version_again_does_not_stack_it() -> None:
    first = promote(None, "a@000000000001", T0)
    again = promote(first, "a@000000000001", T0 + timedelta(minutes=5))
    assert again.previous == ()
    assert again.promoted_at != first.promoted_at  # a new revision: a refused version is retried


def test_rollback_without_a_previous_version_says_so() -> None:
    with pytest.raises(ConfigError, match="nothing to roll back"):
        rollback(None, T0)
    with pytest.raises(ConfigError, match="the only one promoted"):
        rollback(promote(None, "a@000000000001", T0), T0)


def test_the_pointer_round_trips_and_a_bad_one_names_its_field() -> None:
    pointer = Pointer("a@000000000001", ("b@000000000002",), "2026-01-05T09:00:00Z")
    assert Pointer.from_bytes(pointer.to_bytes(), "x") == pointer
    with pytest.raises(ConfigError, match="s3://b/models/current: field 'version'"):
        Pointer.from_bytes(b'{"version": 3}', "s3://b/models/current")
    with pytest.raises(ConfigError, match="not a JSON pointer"):
        Pointer.from_bytes(b"a@000000000001", "current")


@pytest.mark.parametrize(
    ("pointed", "revision", "loaded", "refused", "expected"),
    [
        (None, None, "a@1", None, "keep"),  # nothing promoted yet
        ("a@1", "r1", "a@1", None, "keep"),
        ("b@2", "r2", "a@1", None, "load"),
        ("b@2", "r2", "a@1", "r2", "refused before"),  # the same pointer revision failed
        ("b@2", "r3", "a@1", "r2", "load"),  # promoted again: retried
    ],
)
def test_reload_decision(
    pointed: str | None, revision: str | None, loaded: str, refused: str | None, expected: str
) -> None:
    assert reload_decision(pointed, revision, loaded, refused) == expected


def test_split_model_url() -> None:
    assert split_model_url("s3://bucket/org/models/current") == (
        "s3://bucket/org/models",
        "current",
    )
    assert split_model_url("registry/x@0123456789ab") == ("registry", "x@0123456789ab")
    with pytest.raises(ConfigError):
        split_model_url("s3://bucket")


async def test_publish_list_promote_and_load_on_a_folder(tmp_path: Path) -> None:
    registry = ModelRegistry(LocalObjectStore(tmp_path / "registry"))
    one, first = model_copy(tmp_path / "trained", "org")
    two, second = model_copy(tmp_path / "trained", "org-next")
    assert await registry.publish(one, first) == first.version
    assert await registry.publish(two, second) == second.version
    listed = [v.version for v in await registry.versions()]
    assert sorted(listed) == sorted([first.version, second.version])
    assert (await registry.pointer()) == (None, None)

    await registry.promote(first.version, T0)
    moved = await registry.promote(second.version, T0 + timedelta(days=1))
    assert (moved.version, moved.previous) == (second.version, (first.version,))
    loaded = await registry.load(moved.version, tmp_path / "cache")
    assert loaded.version == second.version
    assert (await registry.rollback(T0 + timedelta(days=2))).version == first.version
    with pytest.raises(ConfigError, match="no version org@"):
        await registry.promote("org@ffffffffffff", T0)


async def test_a_tampered_version_is_refused_on_load(tmp_path: Path) -> None:
    store = MemoryObjectStore()
    registry = ModelRegistry(store)
    folder, artifact = model_copy(tmp_path, "org")
    await registry.publish(folder, artifact)
    key = f"{artifact.version}/peers.json"
    store.objects[key] = store.objects[key].replace(b"[", b"[ ", 1)
    with pytest.raises(ModelError, match=r"sha256 .* does not match"):
        await registry.load(artifact.version, tmp_path / "cache")


async def test_a_version_published_under_another_name_is_refused(tmp_path: Path) -> None:
    store = MemoryObjectStore()
    registry = ModelRegistry(store)
    folder, artifact = model_copy(tmp_path, "org")
    await registry.publish(folder, artifact)
    renamed = "other@" + artifact.version.split("@")[1]
    for key in [k for k in store.objects if k.startswith(artifact.version + "/")]:
        store.objects[key.replace(artifact.version, renamed)] = store.objects[key]
    with pytest.raises(ModelError, match="names org@"):
        await registry.load(renamed, tmp_path / "cache")


def test_public_names_are_the_intended_ones() -> None:
    import detector.registry as registry

    assert set(registry.__all__) == {
        "POINTER_NAME",
        "QUALITY_FILE",
        "LocalObjectStore",
        "MemoryObjectStore",
        "ModelRegistry",
        "ObjectStore",
        "Pointer",
        "S3ObjectStore",
        "VersionInfo",
        "open_registry",
        "promote",
        "quality_report",
        "reload_decision",
        "rollback",
        "split_model_url",
    }
    for name in registry.__all__:
        assert getattr(registry, name) is not None
