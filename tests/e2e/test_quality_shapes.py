"""The multi-shape quality report's machinery on one tiny organisation: a cold-start run that
reports recall, precision and false findings per 1,000 principal-days for the cold-start week
and the steady state, as text and JSON (the full run is ``python -m bench.quality``)."""

from __future__ import annotations

import orjson
import pytest

from detector.cli import main
from detector.evaluation import (
    COLD_START_DAYS,
    evaluate_shape,
    shape_report_json,
    shape_report_text,
)
from detector.synthetic import MISSED_SCENARIOS, attack_labels, shape_config


def test_one_tiny_shape_is_reported_per_period() -> None:
    config = shape_config("startup", baseline_days=8, attack_days=2, scale=0.5)
    result = evaluate_shape("startup", 1, "default", config=config)
    assert result.cold_start.principal_days > 0
    assert result.steady_state.principal_days > 0
    # Attacks fall after the cold-start week: every incident is a steady-state one.
    assert result.cold_start.incidents == 0
    assert result.steady_state.incidents == len(attack_labels(config, 1))
    assert set(MISSED_SCENARIOS) <= {label.scenario for label in attack_labels(config, 1)}
    assert 0.0 <= result.incident_recall <= 1.0
    text = shape_report_text([result])
    assert text.splitlines()[2].startswith("startup")
    assert f"the first {COLD_START_DAYS} days" in text
    doc = orjson.loads(orjson.dumps(shape_report_json([result])))
    assert doc[0]["steady_state"]["incidents"] == result.steady_state.incidents
    assert doc[0]["held_back"] is False
    # False findings are broken down by kind, and the breakdown adds up.
    for period, figures in (
        ("cold_start", result.cold_start),
        ("steady_state", result.steady_state),
    ):
        assert sum(doc[0][period]["false_by_kind"].values()) == figures.false_findings


def test_an_unknown_shape_is_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--shapes", "startup,nope"]) == 2
    assert "unknown shape 'nope'" in capsys.readouterr().err
