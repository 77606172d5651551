"""Model artifacts on disk: a folder a security engineer can trust and read.

``models/<name>/`` holds

- ``model.skops``: the fitted :class:`WindowAnomalyModel`, saved with skops (never pickle);
- ``peers.json``: the peer baseline explanations compare against;
- ``manifest.json``: ordered feature names and dtypes, the feature schema hash, library
  versions, the training window and counts, threshold and alert budget, and the sha256 of
  ``model.skops`` and ``peers.json``;
- ``README.md``: the model card.

Loading refuses, with a message saying what to do, a folder whose files do not match their
hashes, whose feature schema differs from the running code's, or whose model file holds any
type outside :data:`TRUSTED_TYPES`.

Imports: the standard library, numpy, skops, the feature schema, and this package's model.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import skops.io as sio

from detector.errors import ModelError
from detector.features import feature_dtypes, feature_schema_hash
from detector.scoring._explain import PeerBaseline
from detector.scoring._model import WindowAnomalyModel

__all__ = [
    "ARTIFACT_FORMAT",
    "DEFAULT_MODEL_DIR",
    "TRUSTED_TYPES",
    "ModelArtifact",
    "library_versions",
    "load_artifact",
    "save_artifact",
]

ARTIFACT_FORMAT: Final = 1
MODEL_FILE: Final = "model.skops"
PEERS_FILE: Final = "peers.json"
MANIFEST_FILE: Final = "manifest.json"
CARD_FILE: Final = "README.md"
# The only types a model file may hold beyond those skops trusts by default (scikit-learn's
# IsolationForest, its trees' Python classes, numpy arrays): listed, never inferred from the file.
TRUSTED_TYPES: Final = ("detector.scoring._model.WindowAnomalyModel", "sklearn.tree._tree.Tree")
# The shipped default model (the repository's models/default, or the image's copy).
DEFAULT_MODEL_DIR: Final = Path(__file__).resolve().parents[2] / "models" / "default"


@dataclass(frozen=True, slots=True)
class ModelArtifact:
    """A loaded, verified model with everything scoring needs."""

    model: WindowAnomalyModel
    peers: PeerBaseline
    manifest: Mapping[str, Any]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.manifest["feature_names"])

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"])

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=int(self.manifest["window_seconds"]))

    @property
    def version(self) -> str:
        """``<name>@<first 12 of the model's sha256>``: names the exact file in findings."""
        return f"{self.manifest['name']}@{self.manifest['model_sha256'][:12]}"


def library_versions() -> dict[str, str]:
    names = ("numpy", "scikit-learn", "polars", "skops", "cloudtrail-detector")
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a model is read by other users (containers)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_artifact(
    folder: Path,
    model: WindowAnomalyModel,
    peers: PeerBaseline,
    manifest: Mapping[str, Any],
    card: str,
) -> ModelArtifact:
    """Write the folder; ``manifest`` gets the file hashes and the format added here."""
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / MODEL_FILE
    tmp = folder / f".{MODEL_FILE}.tmp"
    sio.dump(model, tmp)
    os.replace(tmp, model_path)
    _write_atomic(folder / PEERS_FILE, json.dumps(peers.to_json(), indent=1).encode())
    full = {
        **manifest,
        "artifact_format": ARTIFACT_FORMAT,
        "model_file": MODEL_FILE,
        "model_sha256": _sha256(model_path),
        "peers_sha256": _sha256(folder / PEERS_FILE),
        "trusted_types": list(TRUSTED_TYPES),
    }
    _write_atomic(folder / MANIFEST_FILE, json.dumps(full, indent=2, sort_keys=True).encode())
    _write_atomic(folder / CARD_FILE, card.encode())
    return ModelArtifact(model, peers, full)


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise ModelError(
            f"{folder}: no {MANIFEST_FILE}; is this a model folder? (train one with `detector train`)"
        )
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except ValueError as err:
        raise ModelError(f"{path}: not valid JSON ({err})") from None
    if manifest.get("artifact_format") != ARTIFACT_FORMAT:
        raise ModelError(
            f"{path}: artifact format {manifest.get('artifact_format')!r}, this detector reads "
            f"{ARTIFACT_FORMAT}; retrain the model with this version"
        )
    return manifest


def _check_file(folder: Path, name: str, expected: str) -> None:
    path = folder / name
    if not path.is_file():
        raise ModelError(f"{path}: missing")
    actual = _sha256(path)
    if actual != expected:
        raise ModelError(
            f"{path}: sha256 {actual[:16]}... does not match the manifest's {expected[:16]}...; "
            "the file was changed after training: do not load it, retrain or restore it"
        )


def _check_schema(manifest: Mapping[str, Any], path: Path) -> timedelta:
    window = timedelta(seconds=int(manifest["window_seconds"]))
    expected = feature_schema_hash(window)
    if manifest.get("feature_schema_hash") != expected:
        raise ModelError(
            f"{path}: trained on a different feature schema (hash "
            f"{str(manifest.get('feature_schema_hash'))[:12]}, this code has {expected[:12]}); "
            "retrain with `detector train`"
        )
    names = list(feature_dtypes(window))
    if list(manifest.get("feature_names", [])) != names:
        raise ModelError(f"{path}: feature names differ from this code's; retrain")
    return window


def load_artifact(folder: Path | str) -> ModelArtifact:
    """Load and verify a model folder (see the module docstring for what is refused)."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    _check_file(folder, MODEL_FILE, str(manifest.get("model_sha256")))
    _check_file(folder, PEERS_FILE, str(manifest.get("peers_sha256")))
    _check_schema(manifest, folder / MANIFEST_FILE)
    model_path = folder / MODEL_FILE
    try:
        untrusted = sio.get_untrusted_types(file=model_path)
    except Exception as err:  # skops raises various errors for a file that is not its format
        raise ModelError(f"{model_path}: not a readable skops file ({err})") from None
    unexpected = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unexpected:
        raise ModelError(f"{model_path}: holds untrusted types {unexpected}; refusing to load it")
    model = sio.load(model_path, trusted=list(TRUSTED_TYPES))
    if not isinstance(model, WindowAnomalyModel):
        raise ModelError(f"{model_path}: holds a {type(model).__name__}, not a WindowAnomalyModel")
    if list(model.feature_names_in_) != list(manifest["feature_names"]):
        raise ModelError(f"{model_path}: the model's feature names differ from the manifest's")
    peers = PeerBaseline.from_json(json.loads((folder / PEERS_FILE).read_text()))
    return ModelArtifact(model, peers, manifest)
