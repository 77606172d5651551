"""Suppression rules as values, and reading them from YAML with every problem named by line.

A file is a mapping with one key, ``rules``: a list of rules, each with ``id``, ``reason``,
``owner``, an optional ``expires`` (a date or an ISO-8601 time; a date means its midnight UTC)
and ``match``, the conditions (all must hold)::

    rules:
      - id: nightly-prowler
        reason: Prowler's read-only scan from the security account
        owner: secops@example.com
        expires: 2027-03-31
        match:
          kinds: [model_anomaly]
          principals: ["arn:aws:iam::111122223333:role/prowler-*"]
          user_agents: ["*prowler*"]

:func:`parse_rules` refuses the whole file on any problem (:class:`SuppressionFileError`
lists each with its line): unknown fields, bad CIDRs, an empty ``match``, a rule that would
match every finding, duplicate ids.

Imports: the standard library, pyyaml, detector.errors and detector.findings (the severity
scale).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, Final

import yaml

from detector.errors import ConfigError
from detector.findings import MAX_SEVERITY, MIN_SEVERITY

__all__ = [
    "MATCH_FIELDS",
    "Conditions",
    "Problem",
    "RuleSet",
    "SuppressionFileError",
    "SuppressionRule",
    "parse_rules",
    "rule_summary",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_RULE_FIELDS: Final = ("id", "reason", "owner", "expires", "match")
_REQUIRED: Final = ("id", "reason", "owner", "match")
_PATTERN_FIELDS: Final = (
    "kinds",
    "principals",
    "accounts",
    "regions",
    "user_agents",
    "event_names",
)
MATCH_FIELDS: Final = (*_PATTERN_FIELDS, "source_ips", "severity_below")
_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a suppression file, at a 1-based line (0: the file as a whole)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class SuppressionFileError(ConfigError):
    """A suppression file that cannot be used; ``problems`` names each with its line."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(
            f"suppression rules {source} refused ({len(self.problems)} problems):\n"
            + "\n".join(f"  {source}:{p.line}: {p.message}" for p in self.problems)
        )


@dataclass(frozen=True, slots=True)
class Conditions:
    """What a finding must be for a rule to suppress it; an empty tuple means "any".

    Patterns take ``*`` and ``?`` wildcards (``fnmatch``), case-sensitive except user agents.
    ``principals`` match the finding's principal key or its ARN; ``event_names`` with a colon
    match ``service:EventName``, without one the bare event name. For ``source_ips``,
    ``user_agents`` and ``event_names`` the finding must carry at least one value and every
    value it carries must match: a rule never hides a finding because of one benign address
    among others.
    """

    kinds: tuple[str, ...] = ()
    principals: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    source_ips: tuple[Network, ...] = ()
    user_agents: tuple[str, ...] = ()
    event_names: tuple[str, ...] = ()
    severity_below: float | None = None


@dataclass(frozen=True, slots=True)
class SuppressionRule:
    """One rule: who asked for it, why, until when, and what it hides. ``line``: where it
    starts in its file (for logs and errors)."""

    id: str
    reason: str
    owner: str
    match: Conditions
    expires: datetime | None = None
    line: int = 0

    def active_at(self, moment: datetime) -> bool:
        """False from ``expires`` on (an expired rule stops matching by itself)."""
        return self.expires is None or moment < self.expires


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules of one file, in file order (the first rule that matches names the
    suppression), and where they came from."""

    rules: tuple[SuppressionRule, ...] = ()
    source: str = ""

    def __len__(self) -> int:
        return len(self.rules)


# -- reading YAML with lines ---------------------------------------------------------------


class _Located(dict[Any, Any]):
    """A YAML mapping that remembers its line and each key's line."""

    line: int = 0
    key_lines: dict[Any, int]


class _LocatedList(list[Any]):
    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        plain = super().construct_mapping(node, deep=True)
        located = _Located(plain)
        located.line = node.start_mark.line + 1
        located.key_lines = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool | date):
                located.key_lines.setdefault(key, key_node.start_mark.line + 1)
        return located

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> list[Any]:
        located = _LocatedList(super().construct_sequence(node, deep=True))
        located.line = node.start_mark.line + 1
        located.item_lines = [child.start_mark.line + 1 for child in node.value]
        return located


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    return loader.construct_mapping(node)


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> list[Any]:
    return loader.construct_sequence(node)


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def _line_of(value: Any, key: Any = None) -> int:
    if isinstance(value, _Located):
        return value.key_lines.get(key, value.line) if key is not None else value.line
    return int(getattr(value, "line", 0))


# -- checking ------------------------------------------------------------------------------


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """The rules in ``text``; :class:`SuppressionFileError` listing every problem by line."""
    try:
        document = yaml.load(
            text, Loader=_LineLoader
        )  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(err, "problem", None) or str(err)
        raise SuppressionFileError(source, [Problem(line, f"not YAML: {problem}")]) from None
    problems: list[Problem] = []
    if document is None:
        document = _Located({"rules": []})
        document.key_lines = {}
    if not isinstance(document, _Located):
        raise SuppressionFileError(source, [Problem(1, "expected a mapping with a 'rules' list")])
    for key in document:
        if key != "rules":
            problems.append(
                Problem(_line_of(document, key), f"unknown field {key!r} (expected 'rules')")
            )
    listed = document.get("rules", [])
    if not isinstance(listed, list):
        problems.append(Problem(_line_of(document, "rules"), "'rules' must be a list"))
        listed = []
    rules: list[SuppressionRule] = []
    seen: dict[str, int] = {}
    for item in listed:
        rule = _rule(item, problems)
        if rule is None:
            continue
        if rule.id in seen:
            problems.append(
                Problem(
                    rule.line, f"rule {rule.id!r}: duplicate id (first at line {seen[rule.id]})"
                )
            )
        seen.setdefault(rule.id, rule.line)
        rules.append(rule)
    if problems:
        raise SuppressionFileError(source, sorted(problems, key=lambda p: p.line))
    return RuleSet(tuple(rules), source)


def _rule(item: Any, problems: list[Problem]) -> SuppressionRule | None:
    if not isinstance(item, _Located):
        problems.append(
            Problem(_line_of(item), "each rule must be a mapping (id, reason, owner, match)")
        )
        return None
    line = item.line
    name = item.get("id")
    label = f"rule {name!r}" if isinstance(name, str) else "rule"
    before = len(problems)
    for key in item:
        if key not in _RULE_FIELDS:
            problems.append(
                Problem(
                    _line_of(item, key),
                    f"{label}: unknown field {key!r} (known: {', '.join(_RULE_FIELDS)})",
                )
            )
    for key in _REQUIRED:
        if key not in item:
            problems.append(Problem(line, f"{label}: missing {key!r}"))
    for key in ("id", "reason", "owner"):
        value = item.get(key)
        if key in item and (not isinstance(value, str) or not value.strip()):
            problems.append(
                Problem(_line_of(item, key), f"{label}: {key!r} must be non-empty text")
            )
    if isinstance(name, str) and not _ID.match(name):
        problems.append(
            Problem(_line_of(item, "id"), f"{label}: id may hold letters, digits and _.:- only")
        )
    expires = _expiry(item, label, problems)
    match = (
        _conditions(item.get("match"), _line_of(item, "match"), label, problems)
        if "match" in item
        else None
    )
    if len(problems) > before or match is None:
        return None
    return SuppressionRule(
        id=str(name), reason=str(item["reason"]).strip(), owner=str(item["owner"]).strip(),
        match=match, expires=expires, line=line,
    )  # fmt: skip


def _expiry(item: _Located, label: str, problems: list[Problem]) -> datetime | None:
    if item.get("expires") is None:
        return None
    value = item["expires"]
    line = _line_of(item, "expires")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    problems.append(
        Problem(line, f"{label}: expires must be a date or an ISO-8601 time, got {value!r}")
    )
    return None


def _conditions(match: Any, line: int, label: str, problems: list[Problem]) -> Conditions | None:
    if not isinstance(match, _Located) or not match:
        problems.append(Problem(line, f"{label}: 'match' must list at least one condition"))
        return None
    before = len(problems)
    values: dict[str, Any] = {}
    for key, value in match.items():
        where = _line_of(match, key)
        if key not in MATCH_FIELDS:
            problems.append(
                Problem(
                    where, f"{label}: unknown condition {key!r} (known: {', '.join(MATCH_FIELDS)})"
                )
            )
        elif key == "severity_below":
            values[key] = _severity(value, where, label, problems)
        elif key == "source_ips":
            values[key] = _networks(value, where, label, problems)
        else:
            values[key] = _patterns(key, value, where, label, problems)
    if len(problems) > before:
        return None
    conditions = Conditions(**values)
    if _matches_everything(conditions):
        problems.append(
            Problem(line, f"{label}: would match every finding (narrow it: '*' patterns, "
                    "0.0.0.0/0 with ::/0 or a severity above the scale restrict nothing)")
        )  # fmt: skip
        return None
    return conditions


def _items(value: Any, where: int) -> list[tuple[Any, int]]:
    if isinstance(value, _LocatedList):
        return list(zip(value, value.item_lines, strict=True))
    return [(value, where)]


def _patterns(
    key: str, value: Any, where: int, label: str, problems: list[Problem]
) -> tuple[str, ...]:
    items = _items(value, where)
    if not items:
        problems.append(Problem(where, f"{label}: {key} is empty (leave it out to match any)"))
    out: list[str] = []
    for item, at in items:
        if key == "accounts" and isinstance(item, int) and not isinstance(item, bool):
            problems.append(
                Problem(at, f"{label}: quote account ids ('{item}'): YAML reads them as numbers "
                        "and drops leading zeros")
            )  # fmt: skip
        elif not isinstance(item, str) or not item.strip():
            problems.append(Problem(at, f"{label}: {key}: expected text, got {item!r}"))
        elif key == "accounts" and not re.fullmatch(r"[0-9*?]+", item):
            problems.append(Problem(at, f"{label}: accounts: {item!r} is not an account id"))
        else:
            out.append(item.strip())
    return tuple(out)


def _networks(value: Any, where: int, label: str, problems: list[Problem]) -> tuple[Network, ...]:
    items = _items(value, where)
    if not items:
        problems.append(Problem(where, f"{label}: source_ips is empty (leave it out to match any)"))
    out: list[Network] = []
    for item, at in items:
        try:
            out.append(ipaddress.ip_network(str(item).strip(), strict=True))
        except ValueError as err:
            problems.append(
                Problem(at, f"{label}: source_ips: {item!r} is not an IP or CIDR ({err})")
            )
    return tuple(out)


def _severity(value: Any, where: int, label: str, problems: list[Problem]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(Problem(where, f"{label}: severity_below must be a number, got {value!r}"))
        return None
    if value <= MIN_SEVERITY:
        problems.append(
            Problem(where, f"{label}: severity_below {value} matches nothing (severities start "
                    f"at {MIN_SEVERITY})")
        )  # fmt: skip
        return None
    return float(value)


def _matches_everything(c: Conditions) -> bool:
    """True when no condition given restricts anything."""
    restricting = [
        any(p.strip("*") for p in patterns)
        for patterns in (c.kinds, c.principals, c.accounts, c.regions, c.user_agents, c.event_names)
        if patterns
    ]
    if c.source_ips:
        prefixes = {(n.version, n.prefixlen) for n in c.source_ips}
        restricting.append(not {(4, 0), (6, 0)} <= prefixes)
    if c.severity_below is not None:
        restricting.append(c.severity_below <= MAX_SEVERITY)
    return not any(restricting)


def rule_summary(rule: SuppressionRule) -> Mapping[str, Any]:
    """The rule as a small JSON object (for audit records and logs)."""
    return {
        "id": rule.id,
        "reason": rule.reason,
        "owner": rule.owner,
        "expires": rule.expires.isoformat() if rule.expires else None,
    }
