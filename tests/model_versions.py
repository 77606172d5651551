"""Model versions for the registry and roll-out tests: a model re-saved under another name
(same weights, so a distinct ``<name>@<hash>`` costs no training)."""

from __future__ import annotations

from pathlib import Path

from detector.scoring import DEFAULT_MODEL_DIR, ModelArtifact, load_artifact, save_artifact


def model_copy(
    folder: Path, name: str, source: Path = DEFAULT_MODEL_DIR
) -> tuple[Path, ModelArtifact]:
    """The model in ``source`` re-saved as ``name`` in ``folder/name``: a distinct version."""
    model = load_artifact(source)
    manifest = {**model.manifest, "name": name}
    out = folder / name
    artifact = save_artifact(
        out, model.model, model.peers, manifest, (source / "README.md").read_text()
    )
    return out, artifact
