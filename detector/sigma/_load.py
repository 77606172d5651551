"""Reading Sigma rules from folders and ``s3://`` prefixes: the I/O edge of this package.

A location is a folder (its ``*.yml``/``*.yaml`` files, sub-folders included) or
``s3://bucket/prefix`` (the same, under the prefix, read with the archive's S3 client). Rule
files are read in sorted order, so the same rules always load in the same order; a location
that does not exist or holds no rule file is a :class:`~detector.errors.ConfigError`.

Imports: the standard library, detector.archive (S3), detector.errors, this package.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from detector.errors import ConfigError
from detector.sigma._compile import SigmaRules, compile_rules

__all__ = ["load_rules", "read_rule_texts"]

_SUFFIXES: Final = (".yml", ".yaml")


def _folder_texts(folder: Path) -> list[tuple[str, str]]:
    if not folder.is_dir():
        raise ConfigError(f"Sigma rules: {folder} is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix in _SUFFIXES and p.is_file())
    return [(str(p), p.read_text(encoding="utf-8")) for p in files]


async def _s3_texts(url: str, endpoint_url: str | None) -> list[tuple[str, str]]:
    from detector.archive import ArchiveObject, S3Source

    async with S3Source.from_url(url, endpoint_url=endpoint_url) as source:
        keys = [k for k in await source.list_keys() if k.endswith(_SUFFIXES)]
        texts = []
        for key in keys:
            data = await source.read(ArchiveObject.of_key(key, 0))
            texts.append((f"s3://{source.bucket}/{key}", data.decode("utf-8")))
    return texts


async def read_rule_texts(
    locations: Sequence[str], *, endpoint_url: str | None = None
) -> list[tuple[str, str]]:
    """``(source, text)`` of every rule file at ``locations``, in order."""
    texts: list[tuple[str, str]] = []
    for location in locations:
        found = (
            await _s3_texts(location, endpoint_url)
            if location.startswith("s3://")
            else _folder_texts(Path(location))
        )
        if not found:
            raise ConfigError(f"Sigma rules: no .yml or .yaml file in {location}")
        texts.extend(found)
    return texts


async def load_rules(locations: Sequence[str], *, endpoint_url: str | None = None) -> SigmaRules:
    """The rules at ``locations``, compiled (see :func:`compile_rules`) in a thread: compiling
    checks each rule on its examples, which takes a while for hundreds of rules."""
    texts = await read_rule_texts(locations, endpoint_url=endpoint_url)
    return await asyncio.to_thread(compile_rules, texts)
