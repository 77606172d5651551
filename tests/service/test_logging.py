"""Structured logs: one JSON object per line, with ts, level, logger, msg and fields."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from detector.service import configure_logging, fields


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure_logging("INFO", stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_object_per_line(captured: io.StringIO) -> None:
    log = logging.getLogger("detector.service")
    log.info("checkpoint saved", extra=fields(messages=1200, seconds=0.08))
    logging.getLogger("detector.state").warning("%s: fell back to %s", "store", "previous")
    log.debug("not shown at INFO")
    try:
        raise ValueError("multi\nline")
    except ValueError:
        log.exception("boom", extra=fields(message_id="m-1"))

    first, second, third = lines(captured)
    assert set(first) == {"ts", "level", "logger", "msg", "fields"}
    assert str(first["ts"]).endswith("+00:00")
    assert (first["level"], first["msg"]) == ("info", "checkpoint saved")
    assert first["fields"] == {"messages": 1200, "seconds": 0.08}
    assert (second["logger"], second["msg"]) == ("detector.state", "store: fell back to previous")
    assert "fields" not in second
    assert third["level"] == "error"
    assert "ValueError: multi" in str(third["exc"])
    assert len(captured.getvalue().splitlines()) == 3
