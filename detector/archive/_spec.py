"""``detector replay SOURCE``: which source a SOURCE argument names, decided on its text alone.

``s3://bucket/prefix`` is S3; a path ending in ``.jsonl``, ``.ndjson`` or ``.json`` (optionally
``.gz``) is a file of EventBridge envelopes; any other path is a local folder in CloudTrail's
layout. Nothing is
opened here (an S3 source is opened with ``async with``).

Imports: the standard library and this package's sources.
"""

from __future__ import annotations

from typing import Final

from detector.archive._jsonl import DEFAULT_LINES_PER_CHUNK, EnvelopeJsonlSource
from detector.archive._local import LocalFolderSource
from detector.archive._s3 import DEFAULT_S3_CONCURRENCY, S3Source
from detector.aws import StaticCredentials
from detector.errors import ConfigError

__all__ = ["source_for"]

_JSONL_SUFFIXES: Final = tuple(
    f"{s}{z}" for s in (".jsonl", ".ndjson", ".json") for z in ("", ".gz")
)


def source_for(
    spec: str,
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    credentials: StaticCredentials | None = None,
    max_concurrency: int = DEFAULT_S3_CONCURRENCY,
    lines_per_chunk: int = DEFAULT_LINES_PER_CHUNK,
) -> LocalFolderSource | S3Source | EnvelopeJsonlSource:
    """The source a ``detector replay`` argument names (S3 options apply to ``s3://`` only)."""
    if not spec.strip():
        raise ConfigError("replay source is empty: give a folder, s3://bucket/prefix or a .jsonl")
    if spec.startswith("s3://"):
        return S3Source.from_url(
            spec,
            endpoint_url=endpoint_url,
            region_name=region_name,
            credentials=credentials,
            max_concurrency=max_concurrency,
        )
    if "://" in spec:
        raise ConfigError(f"replay source {spec!r}: only s3:// URLs and local paths are read")
    if spec.lower().endswith(_JSONL_SUFFIXES):
        return EnvelopeJsonlSource(spec, lines_per_chunk=lines_per_chunk)
    return LocalFolderSource(spec)
