"""The registry's pointer object as a value, and the decisions about it (no I/O).

``<root>/current`` holds ``{"version": "<name>@<sha12>", "previous": [...], "promoted_at":
"..."}``: :func:`promote` pushes the running version onto ``previous`` (so :func:`rollback` can
return to it), :func:`rollback` pops it. :func:`reload_decision` is what a running service does
when it reads the pointer: keep, load, or leave alone a revision it already refused.

Imports: the standard library and detector.errors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from detector.errors import ConfigError

__all__ = ["POINTER_NAME", "Pointer", "promote", "reload_decision", "rollback"]

POINTER_NAME: Final = "current"
MAX_PREVIOUS: Final = 20  # versions a chain of rollbacks can return to


@dataclass(frozen=True, slots=True)
class Pointer:
    """Which version runs, the ones before it (newest first), and when it was promoted."""

    version: str
    previous: tuple[str, ...] = ()
    promoted_at: str | None = None

    def to_bytes(self) -> bytes:
        document = {
            "version": self.version,
            "previous": list(self.previous),
            "promoted_at": self.promoted_at,
        }
        return (json.dumps(document, indent=2) + "\n").encode()

    @staticmethod
    def from_bytes(data: bytes, where: str) -> Pointer:
        """The pointer in ``data``; a :class:`ConfigError` naming ``where`` and the field."""
        try:
            document = json.loads(data)
        except ValueError as err:
            raise ConfigError(f"{where}: not a JSON pointer ({err})") from None
        if not isinstance(document, dict):
            raise ConfigError(f"{where}: expected a JSON object")
        version = document.get("version")
        if not isinstance(version, str) or "@" not in version:
            raise ConfigError(f"{where}: field 'version': expected '<name>@<hash>'")
        previous = document.get("previous", [])
        if not isinstance(previous, list) or not all(isinstance(p, str) for p in previous):
            raise ConfigError(f"{where}: field 'previous': expected a list of versions")
        promoted_at = document.get("promoted_at")
        return Pointer(
            version, tuple(previous), promoted_at if isinstance(promoted_at, str) else None
        )


def revision_of(data: bytes) -> str:
    """A pointer object's revision: re-promoting a version gives a new one."""
    return hashlib.sha256(data).hexdigest()[:16]


def promote(current: Pointer | None, version: str, now: datetime) -> Pointer:
    """``version`` runs next; the running one is kept for :func:`rollback`."""
    at = now.isoformat().replace("+00:00", "Z")
    if current is None:
        return Pointer(version, (), at)
    previous = current.previous
    if current.version != version:
        previous = (current.version, *previous)
    return Pointer(version, previous[:MAX_PREVIOUS], at)


def rollback(current: Pointer | None, now: datetime) -> Pointer:
    """The version before the running one runs again."""
    if current is None:
        raise ConfigError("nothing to roll back: no version has been promoted")
    if not current.previous:
        raise ConfigError(f"nothing to roll back to: {current.version} is the only one promoted")
    at = now.isoformat().replace("+00:00", "Z")
    return Pointer(current.previous[0], current.previous[1:], at)


Decision = Literal["keep", "load", "refused before"]


def reload_decision(
    pointed: str | None, revision: str | None, loaded: str, refused_revision: str | None
) -> Decision:
    """What a running service does with the pointer it just read.

    ``keep`` when it points at the loaded version (or there is none); ``refused before`` when
    this very pointer revision named a model that failed verification (it is not fetched again
    until the pointer changes: promote the version again to retry it); otherwise ``load``."""
    if pointed is None or pointed == loaded:
        return "keep"
    if revision is not None and revision == refused_revision:
        return "refused before"
    return "load"
