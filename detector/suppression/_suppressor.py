"""Applying a suppression file to batches of findings, the same way in replay and the service.

:class:`Suppressor` holds the rules of its :class:`~detector.suppression.RulesSource` and,
before each batch, asks the source whether the file changed (re-reading it only then: a file
that no longer parses is logged and the rules in force are kept). It divides the batch with the
pure :func:`~detector.suppression.split_findings`, writes each suppressed finding to the audit
sink with the rule that hid it, and counts per rule once the caller has delivered the rest.
A rule whose expiry the findings' event time has passed is logged once.

Imports: the standard library, orjson, detector.findings, detector.sinks, the service's log
fields, and this package.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

from detector.findings import Finding, finding_to_dict
from detector.service._logging import fields
from detector.sinks import FindingMessage, FindingSink
from detector.suppression._match import Split, event_time, split_findings
from detector.suppression._rules import RuleSet, parse_rules, rule_summary
from detector.suppression._source import RulesSource

__all__ = ["Suppressor", "audit_record", "load_rule_set"]

_log = logging.getLogger("detector.suppression")


async def load_rule_set(source: RulesSource) -> RuleSet:
    """The rules of ``source`` (SuppressionFileError or ConfigError naming the file)."""
    return parse_rules(await source.read(), source.name)


def audit_record(finding: Finding, rule_id: str, summary: dict[str, Any]) -> dict[str, Any]:
    """One line of the audit file: the rule that hid the finding, and the finding."""
    return {"rule_id": rule_id, "rule": summary, "finding": finding_to_dict(finding)}


class Suppressor:
    """Suppression for one run (see the module docstring).

    ``counts`` holds the suppressions per rule (the service's consumer exports them as
    ``detector_findings_suppressed_total{rule}``); ``on_rules(n)`` is told how many rules are
    in force after each (re)load, ``on_reload_failed()`` of each changed file refused.
    """

    def __init__(
        self,
        source: RulesSource,
        audit: FindingSink,
        *,
        on_rules: Callable[[int], None] | None = None,
        on_reload_failed: Callable[[], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.audit = audit
        self.rules = RuleSet(source=source.name)
        self.counts: Counter[str] = Counter()
        self._version: str | None = None
        self._on_rules = on_rules
        self._on_reload_failed = on_reload_failed
        self._expired_logged: set[str] = set()
        self._latest: datetime | None = None
        self._monotonic = monotonic
        self._checked_at: float | None = None
        self._failure: str | None = None  # the last reload failure, logged once

    async def start(self) -> None:
        """Load the rules; a file that cannot be read or used is an error (a start-up one)."""
        version = await self.source.version()
        self._checked_at = self._monotonic()
        self._install(await load_rule_set(self.source), version)

    async def refresh(self) -> bool:
        """Re-read the file if it changed; True if new rules are in force. A file that became
        unreadable or invalid is logged (once per distinct problem) and the rules in force are
        kept."""
        now = self._monotonic()
        if self._checked_at is not None and now - self._checked_at < self.source.check_seconds:
            return False
        self._checked_at = now
        try:
            version = await self.source.version()
            if version == self._version:
                return False
            rules = await load_rule_set(self.source)
        except Exception as err:  # keep suppressing with what we have: never crash on a typo
            if str(err) != self._failure:
                self._failure = str(err)
                if self._on_reload_failed is not None:
                    self._on_reload_failed()
                _log.error(
                    "suppression rules not reloaded: the rules in force are kept",
                    extra=fields(source=self.source.name, error=str(err)),
                )
            return False
        self._failure = None
        self._install(rules, version)
        return True

    def _install(self, rules: RuleSet, version: str) -> None:
        self.rules = rules
        self._version = version
        self._expired_logged &= {r.id for r in rules.rules if r.expires is not None}
        if self._on_rules is not None:
            self._on_rules(len(rules))
        _log.info(
            "suppression rules loaded",
            extra=fields(source=rules.source, rules=[r.id for r in rules.rules]),
        )

    async def split(self, findings: Sequence[Finding]) -> Split:
        """Refresh, then divide ``findings`` (nothing is written or counted yet)."""
        await self.refresh()
        if not findings:
            return Split((), ())
        latest = max(event_time(f) for f in findings)
        if self._latest is None or latest > self._latest:
            self._latest = latest
            self._log_expired(latest)
        return split_findings(self.rules.rules, findings)

    def _log_expired(self, moment: datetime) -> None:
        for rule in self.rules.rules:
            if rule.id in self._expired_logged or rule.active_at(moment):
                continue
            self._expired_logged.add(rule.id)
            _log.warning(
                "suppression rule expired: it no longer suppresses anything",
                extra=fields(
                    rule=rule.id,
                    owner=rule.owner,
                    expires=rule.expires,
                    source=self.rules.source,
                    line=rule.line,
                ),
            )

    async def write_audit(self, split: Split) -> None:
        """Every suppressed finding to the audit sink (SinkError if it cannot take them)."""
        if not split.suppressed:
            return
        await self.audit.send(list(_audit_messages(split.suppressed)))

    def record(self, split: Split) -> None:
        """Count the suppressions of a batch that was delivered."""
        self.counts.update(rule.id for _, rule in split.suppressed)

    async def close(self) -> None:
        await self.source.close()


def _audit_messages(suppressed: Iterable[tuple[Finding, Any]]) -> Iterable[FindingMessage]:
    for finding, rule in suppressed:
        body = orjson.dumps(audit_record(finding, rule.id, dict(rule_summary(rule))))
        yield FindingMessage(finding.finding_id, finding.principal, body, finding.count)
