"""Which rule, if any, suppresses a finding: a pure function of (rules, finding, moment).

The moment is the finding's own event time (:func:`event_time`, its ``last_seen``) unless the
caller gives another, so a replay of last month and the live stream judge the same finding by
the same rules the same way: a rule that expired yesterday still covers last month's findings
in a replay, and stops covering live ones from its expiry on.

What a finding says about itself decides: its kind, principal key and ARN, account, region,
severity and sampled source IPs; its event names are its ``signals`` of the form
``service:EventName`` (detections) and the ``new_event_names`` of its evidence (the model); its
user agents are the ``user_agent``/``user_agents``/``new_user_agents`` values of its evidence.
A finding that carries no value of a condition that needs one (no user agent recorded) is not
suppressed by a rule with that condition.

Imports: the standard library, detector.findings and this package's rules.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from detector.findings import Finding
from detector.suppression._rules import Conditions, SuppressionRule

__all__ = [
    "Split",
    "event_names_of",
    "event_time",
    "matching_rule",
    "split_findings",
    "user_agents_of",
]

_USER_AGENT_KEYS: Final = ("user_agent", "user_agents", "new_user_agents")
_EVENT_NAME_KEYS: Final = ("event_name", "event_names", "new_event_names")


def event_time(finding: Finding) -> datetime:
    """The moment a finding is judged at: its last event."""
    return finding.last_seen


def _evidence_texts(finding: Finding, keys: Iterable[str]) -> list[str]:
    out: list[str] = []
    for key in keys:
        value = finding.evidence.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item:
                out.append(item)
    return out


def event_names_of(finding: Finding) -> tuple[str, ...]:
    """``service:EventName`` values the finding records (see the module docstring)."""
    names = [s for s in finding.signals if ":" in s]
    names += _evidence_texts(finding, _EVENT_NAME_KEYS)
    return tuple(dict.fromkeys(names))


def user_agents_of(finding: Finding) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_evidence_texts(finding, _USER_AGENT_KEYS)))


@functools.lru_cache(maxsize=4096)
def _compiled(patterns: tuple[str, ...], ignore_case: bool = False) -> re.Pattern[str]:
    """One regular expression for a condition's wildcard patterns (rules are few and fixed,
    findings many: compiled once per condition, not per finding)."""
    flags = re.IGNORECASE if ignore_case else 0
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns), flags)


def _any(patterns: tuple[str, ...], values: Iterable[str | None]) -> bool:
    pattern = _compiled(patterns)
    return any(v is not None and pattern.match(v) for v in values)


def _event_name_matches(patterns: tuple[str, ...], name: str) -> bool:
    full = tuple(p for p in patterns if ":" in p)
    bare = tuple(p for p in patterns if ":" not in p)
    return bool(
        (full and _compiled(full).match(name))
        or (bare and _compiled(bare).match(name.rpartition(":")[2]))
    )


def _ip_in(text: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:  # a service name (``ec2.amazonaws.com``) is not an address
        return False
    return any(address in network for network in networks)


def _holds(c: Conditions, finding: Finding) -> bool:
    if c.kinds and not _any(c.kinds, [finding.kind]):
        return False
    if c.principals and not _any(c.principals, [finding.principal, finding.principal_arn]):
        return False
    if c.accounts and not _any(c.accounts, [finding.account_id]):
        return False
    if c.regions and not _any(c.regions, [finding.region]):
        return False
    if c.severity_below is not None and not finding.severity < c.severity_below:
        return False
    if c.source_ips:
        ips = finding.source_ips
        if not ips or not all(_ip_in(ip, c.source_ips) for ip in ips):
            return False
    if c.user_agents:
        agents = user_agents_of(finding)
        pattern = _compiled(c.user_agents, ignore_case=True)
        if not agents or not all(pattern.match(a) for a in agents):
            return False
    if c.event_names:
        names = event_names_of(finding)
        if not names or not all(_event_name_matches(c.event_names, n) for n in names):
            return False
    return True


def matching_rule(
    rules: Sequence[SuppressionRule], finding: Finding, at: datetime | None = None
) -> SuppressionRule | None:
    """The first rule, in file order, active at ``at`` (default: :func:`event_time`) whose
    conditions all hold for ``finding``; None if no rule suppresses it."""
    moment = event_time(finding) if at is None else at
    for rule in rules:
        if rule.active_at(moment) and _holds(rule.match, finding):
            return rule
    return None


@dataclass(frozen=True, slots=True)
class Split:
    """A batch of findings divided: ``kept`` go to the sinks, ``suppressed`` to the audit
    sink with the rule that matched."""

    kept: tuple[Finding, ...]
    suppressed: tuple[tuple[Finding, SuppressionRule], ...]


def split_findings(rules: Sequence[SuppressionRule], findings: Iterable[Finding]) -> Split:
    """Each finding judged at its own event time (see :func:`matching_rule`)."""
    kept: list[Finding] = []
    suppressed: list[tuple[Finding, SuppressionRule]] = []
    for finding in findings:
        rule = matching_rule(rules, finding) if rules else None
        if rule is None:
            kept.append(finding)
        else:
            suppressed.append((finding, rule))
    return Split(tuple(kept), tuple(suppressed))
