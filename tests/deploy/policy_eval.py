"""A small evaluator of resource-policy statements, for the operators our policies use.

It answers one question per request: does the policy explicitly deny it, allow it, or neither?
Enough to show that the queue policies let the EventBridge rule in, keep everything else that
matters out, and never deny the rule itself. It is not IAM: no identity policies, no SCPs, no
policy variables; unknown operators raise.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Decision = Literal["deny", "allow", "no-decision"]

_NEGATED = {"StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike"}
_OPERATORS = {
    "StringEquals",
    "StringNotEquals",
    "StringLike",
    "StringNotLike",
    "ArnEquals",
    "ArnLike",
    "ArnNotEquals",
    "ArnNotLike",
    "Bool",
}


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    principal_service: str | None = None
    principal_arn: str | None = None
    context: Mapping[str, str] = field(default_factory=dict)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches_any(patterns: Iterable[str], value: str, *, case_sensitive: bool = True) -> bool:
    if not case_sensitive:
        value = value.lower()
        patterns = [pattern.lower() for pattern in patterns]
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def _principal_matches(principal: Any, request: Request) -> bool:
    if principal == "*":
        return True
    services = as_list(principal.get("Service", []))
    arns = as_list(principal.get("AWS", []))
    return (request.principal_service in services) or (
        request.principal_arn is not None and ("*" in arns or request.principal_arn in arns)
    )


def _condition_holds(operator: str, key: str, expected: Any, context: Mapping[str, str]) -> bool:
    base = operator.removesuffix("IfExists")
    if base not in _OPERATORS:
        raise NotImplementedError(f"condition operator {operator}")
    if key not in context:
        # IAM: a missing key satisfies ...IfExists and the negated operators, nothing else.
        return operator.endswith("IfExists") or base in _NEGATED
    actual = context[key]
    expected_values = [str(value) for value in as_list(expected)]
    if base == "Bool":
        return actual.lower() in (value.lower() for value in expected_values)
    like = base.endswith("Like")
    hit = _matches_any(expected_values, actual) if like else actual in expected_values
    return not hit if base in _NEGATED else hit


def _statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    actions = as_list(statement["Action"])
    resources = as_list(statement["Resource"])
    return (
        _principal_matches(statement["Principal"], request)
        and _matches_any(actions, request.action, case_sensitive=False)
        and _matches_any(resources, request.resource)
        and all(
            _condition_holds(operator, key, expected, request.context)
            for operator, keys in statement.get("Condition", {}).items()
            for key, expected in keys.items()
        )
    )


def decide(policy: Mapping[str, Any], request: Request) -> Decision:
    """Explicit deny wins over allow; otherwise allow if any statement allows."""
    effects = {
        statement["Effect"]
        for statement in as_list(policy["Statement"])
        if _statement_applies(statement, request)
    }
    if "Deny" in effects:
        return "deny"
    return "allow" if "Allow" in effects else "no-decision"
