"""Published model versions for the registry tests: the shipped model saved under other names
(same weights, so a distinct ``<name>@<hash>`` costs no training), and a way to tamper."""

from __future__ import annotations

from pathlib import Path

from detector.scoring import DEFAULT_MODEL_DIR, ModelArtifact, load_artifact, save_artifact
from tests.integration.conftest import moto_endpoint, moto_server

__all__ = ["model_copy", "moto_endpoint", "moto_server", "tamper"]


def model_copy(folder: Path, name: str) -> tuple[Path, ModelArtifact]:
    """The shipped model re-saved as ``name`` in ``folder/name``: a distinct version."""
    shipped = load_artifact(DEFAULT_MODEL_DIR)
    manifest = {**shipped.manifest, "name": name}
    card = (DEFAULT_MODEL_DIR / "README.md").read_text()
    out = folder / name
    artifact = save_artifact(out, shipped.model, shipped.peers, manifest, card)
    return out, artifact


def tamper(folder: Path) -> None:
    """Change one byte of the peers file after training (its sha256 no longer matches)."""
    path = folder / "peers.json"
    data = bytearray(path.read_bytes())
    data[data.index(b"[") + 1 : data.index(b"[") + 1] = b" "
    path.write_bytes(bytes(data))
