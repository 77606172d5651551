"""Locating and running the external validators the deploy tests use.

The tools venv is found through ``DETECTOR_TOOLS_BIN`` (default ``<repo>/.venv-tools/bin``).
A missing tool fails the test with the command that installs it: these tests never skip, since a
skipped validator in CI would look exactly like a passing one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"
CLOUDFORMATION_DIR = DEPLOY_DIR / "cloudformation"
DETECTOR_TEMPLATE = CLOUDFORMATION_DIR / "detector.yaml"
MEMBER_TEMPLATE = CLOUDFORMATION_DIR / "member-forwarder.yaml"
DOCKERFILE = DEPLOY_DIR / "docker" / "Dockerfile"
DOCKERIGNORE = DEPLOY_DIR / "docker" / "Dockerfile.dockerignore"
K8S_DIR = DEPLOY_DIR / "k8s"
OVERLAYS = ("dev", "prod")

TOOLS_HINT = (
    "run `make tools` (creates .venv-tools from requirements-tools.txt) "
    "or point DETECTOR_TOOLS_BIN at a bin/ folder holding it"
)
# Generous: checkov is the slowest and takes a few seconds here; a hang must not eat CI's budget.
TOOL_TIMEOUT_SECONDS = 300


def tools_bin() -> Path:
    return Path(os.environ.get("DETECTOR_TOOLS_BIN", REPO_ROOT / ".venv-tools" / "bin"))


def tool(name: str) -> Path:
    """Path of a validator from the tools venv, or fail saying how to install it."""
    path = tools_bin() / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"validator {name!r} not found in {tools_bin()}: {TOOLS_HINT}", pytrace=False)
    return path


def run(argv: Sequence[str | Path], *, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """Run a validator, capturing its output; the caller judges the exit code."""
    return subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_SECONDS,
        check=False,
        # Offline: checkov must not fetch its check-ID mapping; no colour codes in the output.
        env={**os.environ, "NO_COLOR": "1", "BC_SKIP_MAPPING": "TRUE"},
    )


def kustomize_command() -> list[str]:
    """`kustomize build`, or `kubectl kustomize` (kubectl embeds kustomize v5)."""
    standalone = tools_bin() / "kustomize"
    if standalone.is_file():
        return [str(standalone), "build"]
    for name, argv in (("kustomize", ["build"]), ("kubectl", ["kustomize"])):
        found = shutil.which(name)
        if found:
            return [found, *argv]
    pytest.fail(
        "neither kustomize nor kubectl found on PATH or in the tools venv: install kubectl "
        "(it embeds kustomize) or a kustomize v5 binary",
        pytrace=False,
    )


def render_overlay(overlay: str) -> str:
    """The manifests of one overlay as kustomize renders them."""
    result = run([*kustomize_command(), K8S_DIR / "overlays" / overlay])
    assert result.returncode == 0, f"kustomize failed for {overlay}:\n{result.stderr}"
    # kustomize warns on stderr about deprecated fields (commonLabels, patchesStrategicMerge...).
    assert result.stderr.strip() == "", f"kustomize warned for {overlay}:\n{result.stderr}"
    return result.stdout


def load_documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def load_template(path: Path) -> dict[str, Any]:
    """A CloudFormation template with its short forms (!Ref, !Sub...) as Fn:: dicts."""
    from cfnlint.decode import cfn_yaml  # moto[server] depends on cfn-lint

    template: dict[str, Any] = cfn_yaml.load(str(path))
    return template
