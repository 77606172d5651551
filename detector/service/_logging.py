"""Structured logs: one JSON object per line on stderr.

Each line is ``{"ts": ..., "level": ..., "logger": ..., "msg": ..., "fields": {...}}`` (plus
``"exc"`` with the traceback when there is one). Code attaches fields with
``log.info("checkpoint saved", extra=fields(messages=1200, seconds=0.08))``; records from other
libraries (botocore, the state store) come out the same way, with their message formatted.

Imports: the standard library and orjson.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

__all__ = ["JsonFormatter", "configure_logging", "fields"]

_FIELDS_ATTRIBUTE = "detector_fields"


def fields(**values: Any) -> dict[str, Any]:
    """The ``extra=`` argument that attaches ``values`` to a log record."""
    return {_FIELDS_ATTRIBUTE: values}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line (values orjson cannot encode become strings)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, _FIELDS_ATTRIBUTE, None)
        if isinstance(extra, Mapping) and extra:
            document["fields"] = dict(extra)
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route every logger to one JSON handler on ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # One line per HTTP request or credential lookup would drown the service's own lines.
    for noisy in ("botocore", "aiobotocore", "urllib3", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
