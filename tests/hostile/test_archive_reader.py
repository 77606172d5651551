"""The archive reader on real files: a batch whose decoding raises (a parser bug, not bad data:
bad data is already a failure) costs only the file that raises, never the replay."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from detector.archive import LocalFolderSource, read_events
from tests.hostile.conftest import record, trail_key, write_trail

DELIVERED = datetime(2024, 3, 4, 0, 5, tzinfo=UTC)


class FailingOn(ThreadPoolExecutor):
    """Decodes in a thread, but raises for any batch holding the file named ``poisoned``."""

    def __init__(self, poisoned: str) -> None:
        super().__init__(1)
        self.poisoned = poisoned

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        objects = args[0] if args else []
        if any(self.poisoned in obj.key for obj, _, _ in objects):
            raise RuntimeError("a decoder bug")
        return super().submit(fn, *args, **kwargs)


async def test_a_file_whose_decoding_raises_fails_alone(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    for name in ("a", "poisoned", "b"):
        write_trail(root, trail_key(DELIVERED, name), [record(name, DELIVERED - timedelta(1))])
    with FailingOn("poisoned") as executor:
        chunks = read_events(LocalFolderSource(root), decode_executor=executor)
        async with aclosing(chunks):
            done = [chunk async for chunk in chunks]
    ids = sorted(i for c in done for i in c.events.get_column("event_id").to_list())
    failures = [f for c in done for f in c.failures]
    assert ids == ["a", "b"]
    assert [(f.field, "poisoned" in f.origin) for f in failures] == [("<file>", True)]
    assert sum(c.counts.failed_files for c in done) == 1
