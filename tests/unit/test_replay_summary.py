"""The replay's summary names the detections that failed on some batches (a bug in a rule
must not go unseen when the replay goes on without it)."""

from __future__ import annotations

from detector.replay import ReplaySummary


def test_the_summary_names_detections_that_failed_and_says_nothing_when_none_did() -> None:
    summary = ReplaySummary(events=10)
    assert "failed on" not in summary.text()
    summary.detection_errors.update(["broken_rule", "broken_rule", "other_rule"])
    lines = summary.text().splitlines()
    assert "detection broken_rule failed on 2 batch(es): its findings there are missing" in lines
    assert "detection other_rule failed on 1 batch(es): its findings there are missing" in lines
