"""Model artifacts on disk: a folder a security engineer can trust and read.

``models/<name>/`` holds

- ``model.skops``: the fitted :class:`WindowAnomalyModel`, saved with skops (never pickle);
- ``peers.json``: the peer baseline explanations compare against;
- ``manifest.json``: ordered feature names and dtypes, the feature schema hash, library
  versions, the training window and counts, threshold and alert budget, and the sha256 of
  ``model.skops`` and ``peers.json``;
- ``README.md``: the model card.

Loading refuses, with a message naming the file and the field and saying what to do, a folder
whose manifest is not the typed schema below (a threshold that is not a finite number, a missing
``window_seconds``...), whose signature does not verify when a key is configured
(:mod:`detector.scoring._signing`), whose files do not match their hashes, whose feature schema differs from the running code's, or whose model file holds any
type outside :data:`TRUSTED_TYPES`.

Imports: the standard library, msgspec, numpy, skops, the feature schema, and this package's
model, normalisation and signing.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
import skops.io as sio

from detector.errors import ModelError
from detector.features import feature_dtypes, feature_schema_hash
from detector.scoring._calibrate import CalibrationBounds
from detector.scoring._explain import PeerBaseline
from detector.scoring._model import WindowAnomalyModel
from detector.scoring._normalise import KNOT_QUANTILES
from detector.scoring._signing import ModelSigning

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
    signing: ModelSigning | None = None,
) -> ModelArtifact:
    """Write the folder; ``manifest`` gets the file hashes and the format added here, and is
    signed when ``signing`` holds a key."""
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
    text = json.dumps(full, indent=2, sort_keys=True).encode()
    _write_atomic(folder / MANIFEST_FILE, text)
    (signing or ModelSigning()).sign(folder, text)  # without a key: a stale signature goes
    _write_atomic(folder / CARD_FILE, card.encode())
    return ModelArtifact(model, peers, full)


_Finite = Annotated[float, msgspec.Meta(ge=-1e300, le=1e300)]  # refuses inf and NaN too
_Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


class _Knots(msgspec.Struct):
    forest: Annotated[list[_Finite], msgspec.Meta(min_length=len(KNOT_QUANTILES))]
    deviation: Annotated[list[_Finite], msgspec.Meta(min_length=len(KNOT_QUANTILES))]


class _Calibration(msgspec.Struct, forbid_unknown_fields=True):
    """The live threshold's bounds (:class:`~detector.scoring.CalibrationBounds`), optional."""

    threshold_min: _Finite | None = None
    threshold_max: _Finite | None = None
    half_life_days: Annotated[float, msgspec.Meta(gt=0, le=3_650)] | None = None
    bins: Annotated[int, msgspec.Meta(ge=10, le=100_000)] | None = None
    min_principal_days: Annotated[float, msgspec.Meta(ge=0, le=1e12)] | None = None
    live: bool | None = None


class _Manifest(msgspec.Struct):
    """What loading and scoring read from ``manifest.json``, typed: anything else is refused
    before the model is used (other keys, the training summary say, are free-form)."""

    artifact_format: int
    name: Annotated[str, msgspec.Meta(min_length=1)]
    window_seconds: Annotated[int, msgspec.Meta(gt=0, le=86_400)]
    threshold: _Finite
    feature_names: list[str]
    feature_schema_hash: str
    model_sha256: _Sha256
    peers_sha256: _Sha256
    score_knots: _Knots
    alert_budget_per_1000_principal_days: Annotated[float, msgspec.Meta(gt=0, le=1e6)] = 5.0
    calibration: _Calibration | None = None


def _read_manifest(folder: Path, signing: ModelSigning) -> dict[str, Any]:
    """The manifest, its signature checked (with a key) and its fields typed."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise ModelError(
            f"{folder}: no {MANIFEST_FILE}; is this a model folder? (train one with `detector train`)"
        )
    raw = path.read_bytes()
    signing.verify(folder, raw)
    try:
        manifest = json.loads(raw)
    except ValueError as err:
        raise ModelError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise ModelError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    if manifest.get("artifact_format") != ARTIFACT_FORMAT:
        raise ModelError(
            f"{path}: artifact format {manifest.get('artifact_format')!r}, this detector reads "
            f"{ARTIFACT_FORMAT}; retrain the model with this version"
        )
    try:
        msgspec.convert(manifest, _Manifest)
        CalibrationBounds.from_manifest(manifest)  # the live threshold's bounds hold together
    except msgspec.ValidationError as err:
        raise ModelError(f"{path}: {_worded(err)}; retrain or restore the model") from None
    except ValueError as err:
        raise ModelError(f"{path}: field {err}; retrain or restore the model") from None
    return manifest


def _worded(err: msgspec.ValidationError) -> str:
    """msgspec's "Expected `float`, got `str` - at `$.threshold`" as "field 'threshold': ..."."""
    text = str(err)
    message, _, at = text.partition(" - at `$")
    if at:
        return f"field '{at.rstrip('`').lstrip('.')}': {message}"
    missing = _MISSING.match(text)
    if missing:
        return f"field '{missing[1]}': missing"
    return text


_MISSING: Final = re.compile(r"Object missing required field `([^`]+)`")


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


def load_artifact(folder: Path | str, signing: ModelSigning | None = None) -> ModelArtifact:
    """Load and verify a model folder (see the module docstring for what is refused).

    With a key in ``signing``, the manifest's signature is checked before anything else is
    read (see :mod:`detector.scoring._signing`)."""
    folder = Path(folder)
    manifest = _read_manifest(folder, signing or ModelSigning())
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
