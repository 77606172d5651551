"""Signed model artifacts: an HMAC over ``manifest.json``, verified before anything is loaded.

``manifest.json`` holds the sha256 of every other file of a model folder, so a MAC over the
manifest's bytes covers the whole folder: whoever can change a weight and fix its hash in the
manifest cannot also fix the MAC without the key. The MAC is written beside the manifest as
``manifest.sig`` (``{"algorithm": "HMAC-SHA256", "mac": "<hex>"}``).

The key comes from the environment at the edges (:func:`signing_from_environment`):
``DETECTOR_MODEL_HMAC_KEY`` (the key's text) or ``DETECTOR_MODEL_HMAC_KEY_FILE`` (a file holding
it, e.g. a mounted Kubernetes secret); ``DETECTOR_REQUIRE_SIGNED_MODEL=1`` refuses to start
without a key. With a key, an unsigned or wrongly signed model is refused.

Imports: the standard library and the detector's errors.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from detector.errors import ConfigError, ModelError

__all__ = [
    "HMAC_KEY_ENV",
    "HMAC_KEY_FILE_ENV",
    "REQUIRE_SIGNED_ENV",
    "SIGNATURE_FILE",
    "ModelSigning",
    "signing_from_environment",
]

SIGNATURE_FILE: Final = "manifest.sig"
HMAC_KEY_ENV: Final = "DETECTOR_MODEL_HMAC_KEY"
HMAC_KEY_FILE_ENV: Final = "DETECTOR_MODEL_HMAC_KEY_FILE"
REQUIRE_SIGNED_ENV: Final = "DETECTOR_REQUIRE_SIGNED_MODEL"
_ALGORITHM: Final = "HMAC-SHA256"
_MIN_KEY_BYTES: Final = 16


@dataclass(frozen=True, slots=True)
class ModelSigning:
    """The key models are signed and verified with; ``None``: models are neither."""

    key: bytes | None = None

    def __post_init__(self) -> None:
        if self.key is not None and len(self.key) < _MIN_KEY_BYTES:
            raise ConfigError(f"the model HMAC key is shorter than {_MIN_KEY_BYTES} bytes")

    def mac(self, manifest: bytes) -> str:
        assert self.key is not None, "no key to sign with"
        return hmac.new(self.key, manifest, hashlib.sha256).hexdigest()

    def sign(self, folder: Path, manifest: bytes) -> None:
        """Write ``manifest.sig`` for these manifest bytes (no key: remove a stale one)."""
        path = folder / SIGNATURE_FILE
        if self.key is None:
            path.unlink(missing_ok=True)
            return
        document = {"algorithm": _ALGORITHM, "mac": self.mac(manifest)}
        path.write_text(json.dumps(document, indent=2) + "\n")

    def verify(self, folder: Path, manifest: bytes) -> None:
        """Raise :class:`ModelError` unless ``manifest.sig`` is this key's MAC of ``manifest``;
        without a key, nothing is checked."""
        if self.key is None:
            return
        path = folder / SIGNATURE_FILE
        if not path.is_file():
            raise ModelError(
                f"{path}: missing: the model is unsigned and a signing key is configured; "
                "sign it with `detector train` and the key, or use a signed model"
            )
        try:
            document = json.loads(path.read_text())
            algorithm, mac = document["algorithm"], document["mac"]
        except (ValueError, TypeError, KeyError) as err:
            raise ModelError(f"{path}: not a signature file ({err!r})") from None
        if algorithm != _ALGORITHM or not isinstance(mac, str):
            raise ModelError(f"{path}: field 'algorithm': expected {_ALGORITHM!r}")
        if not hmac.compare_digest(mac, self.mac(manifest)):
            raise ModelError(
                f"{path}: the signature does not match the manifest: the model was changed after "
                "it was signed, or signed with another key; do not load it"
            )


def signing_from_environment(environ: Mapping[str, str]) -> ModelSigning:
    """The signing key the environment configures; :class:`ConfigError` when signing is
    required and no key is given, or the key file cannot be read."""
    key: bytes | None = None
    if environ.get(HMAC_KEY_ENV):
        key = environ[HMAC_KEY_ENV].encode()
    elif environ.get(HMAC_KEY_FILE_ENV):
        path = Path(environ[HMAC_KEY_FILE_ENV])
        try:
            key = path.read_bytes().strip()
        except OSError as err:
            raise ConfigError(f"{HMAC_KEY_FILE_ENV}: cannot read {path}: {err.strerror}") from None
    required = environ.get(REQUIRE_SIGNED_ENV, "").lower() in ("1", "true", "yes")
    if required and key is None:
        raise ConfigError(
            f"{REQUIRE_SIGNED_ENV} is set but no key is: set {HMAC_KEY_ENV} or {HMAC_KEY_FILE_ENV}"
        )
    return ModelSigning(key)
