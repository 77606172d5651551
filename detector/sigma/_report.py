"""The table of which Sigma rules compile and which are refused, and why (for docs/sigma.md).

Imports: this package.
"""

from __future__ import annotations

from pathlib import PurePath

from detector.sigma._compile import SigmaRules

__all__ = ["rules_table"]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def rules_table(rules: SigmaRules) -> str:
    """A Markdown table: one row per rule file, compiled or refused (with the reason),
    sorted by file name."""
    rows: list[tuple[str, str, str, str]] = []
    for detection in rules.detections:
        name = PurePath(rules.sources[detection.id]).name
        rows.append((name, detection.title, "compiled", ""))
    for refusal in rules.refused:
        name = PurePath(refusal.source).name
        rows.append((name, refusal.title or "", "**refused**", refusal.reason))
    lines = ["| rule file | title | result | reason |", "|---|---|---|---|"]
    lines += [f"| `{n}` | {_cell(t)} | {r} | {_cell(why)} |" for n, t, r, why in sorted(rows)]
    return "\n".join(lines)
