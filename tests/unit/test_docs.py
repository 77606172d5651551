"""The README and docs/ say what the code does: their tables are checked against the code, and
their links lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from detector.events import EVENT_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))


def table_first_column(text: str, heading: str) -> list[str]:
    """The backquoted names in the first column of the first table after ``heading``."""
    section = text.split(heading, 1)[1]
    rows = re.findall(r"^\| `([^`]+)` \|", section.split("\n\n|", 1)[1].split("\n\n", 1)[0], re.M)
    return rows


def test_the_event_schema_table_is_the_schema() -> None:
    text = (ROOT / "docs" / "events.md").read_text()
    assert table_first_column(text, "## The columns") == list(EVENT_COLUMNS)


def test_the_service_flags_table_is_the_services() -> None:
    from detector.service import options_table

    text = (ROOT / "docs" / "operations.md").read_text()
    documented = text.split("<!-- flags: begin -->\n", 1)[1].split("<!-- flags: end -->", 1)[0]
    assert documented.strip() == options_table(), "run `make docs`"


def test_the_router_flags_table_is_the_routers() -> None:
    from detector.route import route_options_table

    text = (ROOT / "docs" / "scale-out.md").read_text()
    documented = text.split("<!-- route-flags: begin -->\n", 1)[1]
    documented = documented.split("<!-- route-flags: end -->", 1)[0]
    assert documented.strip() == route_options_table(), "run `make docs`"


def test_the_readme_is_short_enough_to_read() -> None:
    assert len(README.read_text().encode()) <= 15_000


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file_and_heading(page: Path) -> None:
    text = page.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    broken = []
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(link)
        elif anchor and target.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", target.read_text(), re.M)
            if anchor not in {_anchor(h) for h in headings}:
                broken.append(link)
    assert broken == []
