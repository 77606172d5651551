"""The lock files match what they lock: pyproject.toml and requirements-tools.txt (offline).

`make lock` writes them; these checks fail when a requirement was changed without it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(r) for r in PYPROJECT["dependencies"]]
DEV = [Requirement(r) for r in PYPROJECT["optional-dependencies"]["dev"]]
TOOLS = [
    Requirement(line.split("#", 1)[0].strip())
    for line in (ROOT / "requirements-tools.txt").read_text().splitlines()
    if line.split("#", 1)[0].strip()
]

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


@dataclass(frozen=True)
class Lock:
    header: str
    pins: dict[str, Version]
    unhashed: list[str]


def read_lock(name: str) -> Lock:
    """A pip requirements file of `name==version \\ --hash=...` entries, as uv writes it."""
    text = (ROOT / "requirements" / name).read_text()
    pins: dict[str, Version] = {}
    unhashed: list[str] = []
    # An entry is its pin line plus the continuation lines after it.
    for entry in re.split(r"\n(?=\S)", text):
        found = _PIN.match(entry)
        if found is None:
            continue
        pins[canonicalize_name(found.group(1))] = Version(found.group(2))
        if "--hash=sha256:" not in entry:
            unhashed.append(found.group(1))
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    return Lock(header, pins, unhashed)


LOCKS = {
    "dev.lock": RUNTIME + DEV,
    "runtime.lock": RUNTIME,
    "tools.lock": TOOLS,
}


@pytest.mark.parametrize(("name", "requirements"), LOCKS.items(), ids=list(LOCKS))
def test_every_requirement_is_pinned_within_its_range(
    name: str, requirements: list[Requirement]
) -> None:
    lock = read_lock(name)
    missing = [str(r) for r in requirements if canonicalize_name(r.name) not in lock.pins]
    assert not missing, f"{name} lacks {missing}: run `make lock`"
    outside = [
        f"{r} (locked {lock.pins[canonicalize_name(r.name)]})"
        for r in requirements
        if not r.specifier.contains(lock.pins[canonicalize_name(r.name)], prereleases=True)
    ]
    assert not outside, f"{name} pins outside pyproject's ranges: {outside}; run `make lock`"


@pytest.mark.parametrize("name", [*LOCKS, "lock-tools.txt"])
def test_every_pin_carries_a_hash(name: str) -> None:
    lock = read_lock(name)
    assert lock.pins
    assert lock.unhashed == []


@pytest.mark.parametrize("name", list(LOCKS))
def test_the_header_names_the_command_that_made_it(name: str) -> None:
    assert "make lock" in read_lock(name).header


def test_the_image_runs_the_versions_the_tests_ran() -> None:
    runtime, dev = read_lock("runtime.lock").pins, read_lock("dev.lock").pins
    differ = {n: (v, dev.get(n)) for n, v in runtime.items() if dev.get(n) != v}
    assert not differ, f"runtime.lock and dev.lock disagree: {differ}"


SOURCES = {
    "dev.lock": "cloudtrail-detector (pyproject.toml)",
    "runtime.lock": "cloudtrail-detector (pyproject.toml)",
    "tools.lock": "-r requirements-tools.txt",
}


@pytest.mark.parametrize(("name", "source"), SOURCES.items(), ids=list(SOURCES))
def test_nothing_is_locked_for_a_requirement_that_was_removed(name: str, source: str) -> None:
    # uv notes under each pin what pulled it in; a direct pin must still be a requirement.
    text = (ROOT / "requirements" / name).read_text()
    direct = {
        canonicalize_name(found.group(1))
        for entry in re.split(r"\n(?=\S)", text)
        if (found := _PIN.match(entry)) and source in entry
    }
    required = {canonicalize_name(r.name) for r in LOCKS[name]}
    assert direct, f"no pin of {name} names {source!r}: the annotations changed"
    assert direct <= required, f"{name} still pins {direct - required}: run `make lock`"
