"""The model watcher on an in-memory registry: each decision of a poll, and the settings that
choose a registry model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from detector.errors import ConfigError, ModelError
from detector.registry import MemoryObjectStore, ModelRegistry
from detector.service import ServiceMetrics, resolve_settings
from detector.service._model_watch import ModelWatcher
from tests.model_versions import model_copy

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class FlakyStore(MemoryObjectStore):
    """Refuses reads while ``down``."""

    down = False

    async def get(self, key: str) -> bytes | None:
        if self.down:
            raise ConfigError("s3://org-models: reading current: endpoint unreachable")
        return await super().get(key)


async def test_each_poll_decision(tmp_path: Path) -> None:
    store = FlakyStore()
    registry = ModelRegistry(store)
    metrics = ServiceMetrics()
    watcher = ModelWatcher(registry, tmp_path / "cache", metrics=metrics.model)
    with pytest.raises(ModelError, match="no model promoted yet"):
        await watcher.initial()

    versions = {}
    for name in ("org", "org-next", "org-bad"):
        folder, artifact = model_copy(tmp_path / "trained", name)
        versions[name] = await registry.publish(folder, artifact)
    await registry.promote(versions["org"], T0)
    assert (await watcher.initial()).version == versions["org"]
    assert await watcher.poll_once() == "keep"
    assert watcher.take() is None

    await registry.promote(versions["org-next"], T0 + timedelta(hours=1))
    assert await watcher.poll_once() == "load"
    taken = watcher.take()
    assert taken is not None
    assert taken.version == versions["org-next"]
    assert watcher.take() is None  # handed over once
    assert await watcher.poll_once() == "keep"

    key = f"{versions['org-bad']}/model.skops"
    store.objects[key] = b"X" + store.objects[key][1:]
    await registry.promote(versions["org-bad"], T0 + timedelta(hours=2))
    assert await watcher.poll_once() == "refused"
    assert await watcher.poll_once() == "refused before"
    assert watcher.take() is None
    assert watcher.version == versions["org-next"]
    await registry.promote(versions["org-bad"], T0 + timedelta(hours=3))  # retried once more
    assert await watcher.poll_once() == "refused"
    failures = {"reason": "verification"}
    assert metrics.value("detector_model_reload_failures_total", failures) == 2

    store.down = True
    assert await watcher.poll_once() == "unreachable"
    assert metrics.value("detector_model_reload_failures_total", {"reason": "unreachable"}) == 1
    store.down = False
    await registry.rollback(T0 + timedelta(hours=4))  # back to org-next: already running
    assert await watcher.poll_once() == "keep"


def test_the_model_setting_takes_a_registry_pointer() -> None:
    flags = {"queue_url": "https://sqs.eu-west-1.amazonaws.com/111122223333/in"}
    environ = {"DETECTOR_FINDINGS_FILE": "f.jsonl", "DETECTOR_MODEL": "s3://b/models/current"}
    assert resolve_settings(flags, environ).model_dir == "s3://b/models/current"
    assert resolve_settings(flags, {**environ, "DETECTOR_MODEL": "m"}).model_dir == Path("m")
    with pytest.raises(ConfigError, match="DETECTOR_MODEL='s3://b'"):
        resolve_settings(flags, {**environ, "DETECTOR_MODEL": "s3://b"})
    with pytest.raises(ConfigError, match="--model='http://x/y'"):
        resolve_settings({**flags, "model_dir": "http://x/y"}, environ)
