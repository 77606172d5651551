"""The Grafana dashboard (deploy/grafana/detector.json) queries only metrics the service exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from detector.service import ServiceMetrics

from .validators import DEPLOY_DIR

DASHBOARD = DEPLOY_DIR / "grafana" / "detector.json"
METRIC = re.compile(r"\bdetector_[a-z0-9_]+\b")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


def exported_names() -> set[str]:
    """Every sample name the service's registry can expose (labelled or not yet observed)."""
    names: set[str] = set()
    for family in ServiceMetrics().registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def expressions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = {name for expr in expressions(dashboard) for name in METRIC.findall(expr)}
    assert used - exported_names() == set()
    # the model loop's own panels are there: drift, budget, learning, version, refusals
    assert {
        "detector_model_score_quantile",
        "detector_model_score_psi",
        "detector_findings_per_1000_principal_days",
        "detector_principals_learning_share",
        "detector_model_info",
        "detector_model_reload_failures_total",
    } <= used


def test_every_panel_reads_the_chosen_prometheus() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"]
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
