"""The notebooks run, top to bottom, on small data (they are workflows people rely on)."""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def outputs_text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output["text"])
            elif "data" in output and "text/plain" in output["data"]:
                parts.append(output["data"]["text/plain"])
    return "\n".join(parts)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jupyter_client's own, not ours
def test_retrain_notebook_runs_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DETECTOR_NB_BASELINE_DAYS", "4")
    monkeypatch.setenv("DETECTOR_NB_ATTACK_DAYS", "1")
    monkeypatch.setenv("DETECTOR_NB_OUT", str(tmp_path / "model"))
    notebook = nbformat.read(NOTEBOOKS / "retrain.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS.parent)}},
    )
    client.execute()
    text = outputs_text(notebook)
    assert "threshold" in text
    assert "incident recall" in text
    assert "stolen_role_credentials" in text
    figures = sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )
    assert figures >= 2
    assert (tmp_path / "model" / "manifest.json").is_file()
