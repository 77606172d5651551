"""``detector shadow-report``: per kind, day and principal, against the alert budget; its
counts are the file's, and it says how it counted principal-days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.cli import main
from detector.findings import Finding, finding_to_json
from detector.shadow import read_findings, summarise

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def finding(finding_id: str, kind: str, principal: str, day: int, count: int = 1) -> Finding:
    start = T0 + timedelta(days=day)
    return Finding(
        finding_id=finding_id, kind=kind, title="t", severity=5.0, principal=principal,
        principal_arn=None, principal_type="IAMUser", account_id="111122223333",
        region="eu-west-1", window_start=start, window_end=start + timedelta(minutes=15),
        first_seen=start, last_seen=start, created_at=start, score=0.9, count=count,
    )  # fmt: skip


# Two days; "a" is sent twice (its count grew), so 5 messages hold 4 findings.
SENT = [
    finding("a", "model_anomaly", "alice", 0),
    finding("b", "cloudtrail_logging_stopped", "alice", 0),
    finding("a", "model_anomaly", "alice", 0, count=2),
    finding("c", "model_anomaly", "bob", 1),
    finding("d", "model_anomaly", "carol", 1),
]


def write(path: Path, findings: list[Finding], extra: bytes = b"") -> None:
    path.write_bytes(b"".join(finding_to_json(f) + b"\n" for f in findings) + extra)


def test_counts_are_the_files_per_kind_day_and_principal() -> None:
    report = summarise(SENT, budget=5.0, principals_per_day=200)
    assert (report.messages, report.findings, report.days) == (5, 4, 2)
    assert {k: (t.findings, t.messages) for k, t in report.by_kind.items()} == {
        "model_anomaly": (3, 4),
        "cloudtrail_logging_stopped": (1, 1),
    }
    assert {k: t.findings for k, t in report.by_day.items()} == {
        "2024-05-01": 2,
        "2024-05-02": 2,
    }
    assert {k: t.findings for k, t in report.by_principal.items()} == {
        "alice": 2,
        "bob": 1,
        "carol": 1,
    }
    # 3 model findings over 200 x 2 principal-days: 7.5 per 1,000, over a budget of 5
    assert report.principal_days == 400
    assert report.rate(report.model_findings) == pytest.approx(7.5)
    assert report.within_budget is False


def test_without_a_population_the_file_gives_a_floor_and_the_report_says_so() -> None:
    report = summarise(SENT, budget=5.0)
    assert report.principal_days == 3 * 2  # 3 principals with findings x 2 days
    assert "floor" in report.principal_days_how
    assert "at most" in report.text()


def test_the_command_reads_the_shadow_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "shadow.jsonl"
    write(path, SENT, extra=b"not json\n")
    findings, bad = read_findings(path)
    assert len(findings) == 5
    assert len(bad) == 1
    assert bad[0].startswith(f"{path}:6: JSONDecodeError")

    assert main(["shadow-report", str(path), "--principal-days", "1000", "--budget", "2"]) == 0
    text = capsys.readouterr().out
    assert "shadow findings: 4 finding(s) in 5 message(s), 2024-05-01 to 2024-05-02" in text
    assert "model findings: 3: 3.00 per 1,000 principal-days: 1.5x the budget" in text
    assert "1 line(s) were not findings" in text

    assert main(["shadow-report", str(path), "--principals", "10", "--json"]) == 0
    document: dict[str, Any] = orjson.loads(capsys.readouterr().out)
    assert document["messages"] == 5
    assert document["principal_days"] == 20
    assert document["by_kind"]["model_anomaly"]["findings"] == 3
    assert document["budget_per_1000_principal_days"] > 0  # the shipped model's


def test_a_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["shadow-report", str(tmp_path / "none.jsonl")]) == 2
    assert "none.jsonl" in capsys.readouterr().err


def test_principal_days_from_the_profile_count_each_principal_within_the_days() -> None:
    import polars as pl

    from detector.shadow import principal_days_from_profile

    day = datetime(2024, 5, 1, tzinfo=UTC)
    principals = pl.DataFrame(
        {
            "principal_key": ["old", "spans", "late", "gone"],
            "first_seen": [day - timedelta(days=30), day, day + timedelta(days=2), day - timedelta(days=9)],
            "last_seen": [day + timedelta(days=9), day + timedelta(days=1, hours=3), day + timedelta(days=2), day - timedelta(days=5)],
        }
    )  # fmt: skip
    # 1-3 May: "old" 3 days, "spans" 2, "late" 1, "gone" none
    assert (
        principal_days_from_profile(principals, day.date(), (day + timedelta(days=2)).date()) == 6
    )
