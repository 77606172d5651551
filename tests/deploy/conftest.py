"""Session fixtures: the rendered overlays and one checkov run over everything deploy/ ships."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .validators import (
    CLOUDFORMATION_DIR,
    DOCKERFILE,
    OVERLAYS,
    load_documents,
    render_overlay,
    run,
    tool,
)


@dataclass(frozen=True)
class RenderedOverlay:
    name: str
    path: Path
    documents: list[dict[str, Any]]

    def one(self, kind: str) -> dict[str, Any]:
        matches = [doc for doc in self.documents if doc["kind"] == kind]
        assert len(matches) == 1, f"{self.name}: expected one {kind}, got {len(matches)}"
        return matches[0]


@pytest.fixture(scope="session")
def rendered_overlays(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RenderedOverlay]:
    """Every overlay rendered once, kept in memory and on disk (for the file-based validators)."""
    folder = tmp_path_factory.mktemp("rendered-k8s")
    rendered = {}
    for overlay in OVERLAYS:
        text = render_overlay(overlay)
        path = folder / f"{overlay}.yaml"
        path.write_text(text)
        rendered[overlay] = RenderedOverlay(overlay, path, load_documents(text))
    return rendered


CHECKOV_FRAMEWORKS = ("cloudformation", "dockerfile", "kubernetes")


@dataclass(frozen=True)
class CheckovFinding:
    framework: str
    check_id: str
    resource: str
    file: str
    suppress_comment: str


@dataclass(frozen=True)
class CheckovReport:
    resource_count: dict[str, int]
    parsing_errors: list[str]
    failed: list[CheckovFinding]
    skipped: list[CheckovFinding]


def _findings(framework: str, checks: list[dict[str, Any]]) -> list[CheckovFinding]:
    return [
        CheckovFinding(
            framework=framework,
            check_id=check["check_id"],
            resource=check.get("resource", ""),
            file=check.get("file_path", ""),
            suppress_comment=(check.get("check_result") or {}).get("suppress_comment", ""),
        )
        for check in checks
    ]


@pytest.fixture(scope="session")
def checkov_report(rendered_overlays: dict[str, RenderedOverlay]) -> CheckovReport:
    """checkov over the templates, the Dockerfile and the rendered manifests, in one process.

    One ``--file`` list gives one JSON list with a report per framework (several ``--directory``
    options would print one JSON document per directory instead).
    """
    files = [
        *sorted(CLOUDFORMATION_DIR.glob("*.yaml")),
        DOCKERFILE,
        *(overlay.path for overlay in rendered_overlays.values()),
    ]
    result = run(
        [
            tool("checkov"),
            "--skip-download",
            "--output",
            "json",
            "--compact",
            "--framework",
            *CHECKOV_FRAMEWORKS,
            "--file",
            *files,
        ]
    )
    # Exit 1 means failed checks, reported in the JSON; anything else is checkov itself failing.
    assert result.returncode in (0, 1), f"checkov crashed:\n{result.stderr}"
    parsed = json.loads(result.stdout)
    reports = parsed if isinstance(parsed, list) else [parsed]
    resource_count: dict[str, int] = {}
    parsing_errors: list[str] = []
    failed: list[CheckovFinding] = []
    skipped: list[CheckovFinding] = []
    for report in reports:
        framework = report["check_type"]
        results = report["results"]
        resource_count[framework] = report["summary"]["resource_count"]
        parsing_errors += results.get("parsing_errors", [])
        failed += _findings(framework, results["failed_checks"])
        skipped += _findings(framework, results["skipped_checks"])
    return CheckovReport(resource_count, parsing_errors, failed, skipped)
