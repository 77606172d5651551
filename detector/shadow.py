"""``detector shadow-report``: what shadow mode would have sent, against the alert budget.

The input is the shadow sink's JSON Lines file (native findings, one message per line; an
aggregated finding that grew is sent again with the same id and a higher ``count``). The report
counts *messages* (lines: what the findings queue would have received) and *findings*
(distinct ids: what a responder would have looked at), per kind, per UTC day of the finding's
window and per principal, and compares the model's findings with the alert budget (model
findings per 1,000 principal-days).

Principal-days, the budget's denominator, in order of preference: given
(``principal_days``); the active principals per day given, times the days the file covers;
from the shadow run's state (:func:`principal_days_from_profile`: each known principal counts
every day from its first to its last event within the file's days, a ceiling, as a principal
idle in between still counts); or counted from the file itself: the distinct principals that
have a finding, times the days the file covers. The last is a floor (principals without a
finding never appear in the file), so the rates it gives are ceilings, and the report says so.

Imports: the standard library, orjson, polars and detector.findings. Pure but for
:func:`read_findings`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

import orjson
import polars as pl

from detector.findings import Finding, finding_from_dict

__all__ = [
    "ShadowReport",
    "budget_of",
    "principal_days_from_profile",
    "read_findings",
    "summarise",
]

MODEL_KIND: Final = "model_anomaly"
DEFAULT_BUDGET: Final = 5.0


def read_findings(path: Path) -> tuple[list[Finding], list[str]]:
    """The findings of a JSONL file in order, and a description of each line that is not one
    (per-line failures are data: the report says how many)."""
    findings: list[Finding] = []
    failures: list[str] = []
    with path.open("rb") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                findings.append(finding_from_dict(orjson.loads(line)))
            except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as err:
                failures.append(f"{path}:{number}: {type(err).__name__}: {err}")
    return findings, failures


def principal_days_from_profile(principals: pl.DataFrame, first: date, last: date) -> int:
    """Principal-days within ``first``..``last`` (UTC days, inclusive) of the profile's
    principals (``first_seen``, ``last_seen``): each counts every day from its first to its
    last event inside the range."""
    if principals.height == 0:
        return 0
    start = pl.max_horizontal(pl.col("first_seen").dt.date(), pl.lit(first))
    end = pl.min_horizontal(pl.col("last_seen").dt.date(), pl.lit(last))
    days = (end - start).dt.total_days() + 1
    total = principals.select(days.clip(lower_bound=0).sum()).item()
    return int(total or 0)


def budget_of(manifest: Mapping[str, Any]) -> float:
    """A model's alert budget (model findings per 1,000 principal-days)."""
    return float(manifest.get("alert_budget_per_1000_principal_days", DEFAULT_BUDGET))


@dataclass(frozen=True, slots=True)
class Tally:
    """One row: messages (lines) and findings (distinct ids)."""

    messages: int
    findings: int


@dataclass(frozen=True, slots=True)
class ShadowReport:
    messages: int
    findings: int
    first_day: date | None
    last_day: date | None
    principal_days: float
    principal_days_how: str
    budget: float
    model_findings: int
    by_kind: dict[str, Tally]
    by_day: dict[str, Tally]
    by_principal: dict[str, Tally]
    bad_lines: list[str] = field(default_factory=list)

    @property
    def days(self) -> int:
        if self.first_day is None or self.last_day is None:
            return 0
        return (self.last_day - self.first_day).days + 1

    def rate(self, findings: int) -> float | None:
        """Findings per 1,000 principal-days (None without principal-days)."""
        return 1000.0 * findings / self.principal_days if self.principal_days else None

    def to_dict(self) -> dict[str, Any]:
        def rows(table: Mapping[str, Tally]) -> dict[str, Any]:
            return {
                k: {"messages": t.messages, "findings": t.findings, "rate": self.rate(t.findings)}
                for k, t in table.items()
            }

        return {
            "messages": self.messages,
            "findings": self.findings,
            "first_day": self.first_day.isoformat() if self.first_day else None,
            "last_day": self.last_day.isoformat() if self.last_day else None,
            "days": self.days,
            "principal_days": self.principal_days,
            "principal_days_counted": self.principal_days_how,
            "budget_per_1000_principal_days": self.budget,
            "model_findings": self.model_findings,
            "model_findings_per_1000_principal_days": self.rate(self.model_findings),
            "within_budget": self.within_budget,
            "by_kind": rows(self.by_kind),
            "by_day": rows(self.by_day),
            "by_principal": rows(self.by_principal),
            "bad_lines": len(self.bad_lines),
        }

    @property
    def within_budget(self) -> bool | None:
        rate = self.rate(self.model_findings)
        return None if rate is None else rate <= self.budget

    def text(self, *, top: int = 10) -> str:
        def rate_text(n: int) -> str:
            rate = self.rate(n)
            return "-" if rate is None else f"{rate:.2f}"

        def table(title: str, rows: Mapping[str, Tally], limit: int | None = None) -> list[str]:
            ordered = list(rows.items())
            shown = ordered[:limit] if limit is not None else ordered
            width = max([len(title), *(len(k) for k, _ in shown)])
            lines = [
                f"{title:<{width}}  findings  messages  per 1,000 principal-days",
                *(
                    f"{k:<{width}}  {t.findings:>8}  {t.messages:>8}  {rate_text(t.findings):>10}"
                    for k, t in shown
                ),
            ]
            if limit is not None and len(ordered) > limit:
                lines.append(f"... and {len(ordered) - limit} more")
            return lines

        span = (
            f"{self.first_day} to {self.last_day} ({self.days} day(s))" if self.first_day else "-"
        )
        rate = self.rate(self.model_findings)
        verdict = (
            "no principal-days: no rate"
            if rate is None
            else f"{rate:.2f} per 1,000 principal-days: "
            + (
                "within the budget"
                if rate <= self.budget
                else f"{rate / self.budget:.1f}x the budget"
            )
        )
        ceiling = " (at most: see principal-days)" if "floor" in self.principal_days_how else ""
        lines = [
            f"shadow findings: {self.findings} finding(s) in {self.messages} message(s), {span}",
            f"principal-days: {self.principal_days:g} ({self.principal_days_how})",
            f"alert budget: {self.budget:g} model findings per 1,000 principal-days",
            f"model findings: {self.model_findings}: {verdict}{ceiling}",
            f"all findings: {self.findings}: {rate_text(self.findings)} per 1,000 "
            f"principal-days{ceiling}",
            "",
            *table("kind", self.by_kind),
            "",
            *table("day (UTC)", self.by_day),
            "",
            *table("principal", self.by_principal, top),
        ]
        if self.bad_lines:
            lines += ["", f"{len(self.bad_lines)} line(s) were not findings, e.g.:"]
            lines += [f"  {b}" for b in self.bad_lines[:5]]
        return "\n".join(lines)


def _tallies(pairs: Iterable[tuple[str, str]], messages: Counter[str]) -> dict[str, Tally]:
    """Per key: messages, and distinct finding ids; most findings first, then by key."""
    ids: dict[str, set[str]] = {}
    for key, finding_id in pairs:
        ids.setdefault(key, set()).add(finding_id)
    rows = {k: Tally(messages[k], len(v)) for k, v in ids.items()}
    return dict(sorted(rows.items(), key=lambda kv: (-kv[1].findings, kv[0])))


def summarise(
    findings: Sequence[Finding],
    *,
    budget: float = DEFAULT_BUDGET,
    principal_days: float | None = None,
    principals_per_day: int | None = None,
    principal_days_how: str = "given",
    bad_lines: Sequence[str] = (),
) -> ShadowReport:
    """The report of ``findings`` (every message, in order; see the module docstring)."""
    latest: dict[str, Finding] = {}
    for f in findings:  # an update replaces the earlier message of the same finding
        latest[f.finding_id] = f
    days = [f.window_start.date() for f in latest.values()]
    first, last = (min(days), max(days)) if days else (None, None)
    n_days = (last - first).days + 1 if first and last else 0
    if principal_days is not None:
        how = principal_days_how
    elif principals_per_day is not None:
        principal_days = float(principals_per_day * n_days)
        how = f"given {principals_per_day} principals per day x {n_days} day(s)"
    else:
        principals = len({f.principal for f in latest.values()})
        principal_days = float(principals * n_days)
        how = (
            f"counted from the file: {principals} principal(s) with a finding x {n_days} "
            "day(s) covered; a floor, as principals without findings are not in the file: "
            "give --principals or --principal-days for the real rate"
        )

    def day_of(f: Finding) -> str:
        return f.window_start.date().isoformat()

    message_kinds = Counter(f.kind for f in findings)
    message_days = Counter(day_of(f) for f in findings)
    message_principals = Counter(f.principal for f in findings)
    return ShadowReport(
        messages=len(findings),
        findings=len(latest),
        first_day=first,
        last_day=last,
        principal_days=principal_days,
        principal_days_how=how,
        budget=budget,
        model_findings=sum(1 for f in latest.values() if f.kind == MODEL_KIND),
        by_kind=_tallies(((f.kind, i) for i, f in latest.items()), message_kinds),
        by_day=_tallies(((day_of(f), i) for i, f in latest.items()), message_days),
        by_principal=_tallies(((f.principal, i) for i, f in latest.items()), message_principals),
        bad_lines=list(bad_lines),
    )
