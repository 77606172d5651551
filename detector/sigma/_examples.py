"""Example CloudTrail records made from a Sigma rule's own condition: one that it must match
and one that it must not, so a compiled rule carries positive and negative examples like every
native detection, and a rule our compiler got wrong is caught at load time.

The condition tree is walked for field values that satisfy it (and that violate it), the way a
person writes test cases from a rule: the values of its selections, with wildcards filled in.
Regular expressions get a best effort (``.+`` -> ``x``); a rule whose condition yields no
consistent example is refused by the caller.

Imports: the standard library and this package's tree and field map.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any, Final, TypeAlias

from detector.sigma._fields import JSON_OBJECTS, record_paths
from detector.sigma._tree import (
    ANY_CHARS,
    ONE_CHAR,
    AllOf,
    Compare,
    Exists,
    IsNull,
    Leaf,
    Node,
    Not,
    RegexMatch,
    SameAs,
    TextLike,
)

__all__ = ["example_record", "negative_assignments", "positive_assignments"]

# field -> the values it must hold: one for ordinary fields, several text fragments for a
# whole JSON object (``requestParameters|contains|all``); None: the field is absent.
Assignment: TypeAlias = dict[str, tuple[str | None, ...]]

_OTHER: Final = ("zz0", None)  # values tried where a field must not match
_BRANCHES: Final = 4  # alternatives kept per child: examples need one, not all
EXAMPLE_ACCOUNT: Final = "111122223333"


def _text_matches(test: TextLike, value: str | None) -> bool:
    if value is None:
        return False
    regex = "".join(
        ".*" if p == ANY_CHARS else "." if p == ONE_CHAR else re.escape(p) for p in test.parts
    )
    return re.fullmatch(regex, value, 0 if test.cased else re.IGNORECASE | re.DOTALL) is not None


def _regex_candidates(pattern: str) -> list[str]:
    body = re.sub(r"^\(\?[a-z]+\)", "", pattern).lstrip("^").rstrip("$")
    text = body.replace(".+", "x").replace(".*", "").replace("\\d", "1").replace("\\w", "x")
    text = re.sub(r"\\(.)", r"\1", text)
    return [c for c in (text, "x") if re.search(pattern, c)]


def _leaf(leaf: Leaf, want: bool) -> Iterator[Assignment]:
    field, test = leaf.field, leaf.test
    if isinstance(test, SameAs):
        yield {field: ("same-value",), test.other: ("same-value" if want else "other-value",)}
        return
    values: list[str | None]
    if isinstance(test, TextLike):
        if want:
            text = "".join(
                "x" if p == ONE_CHAR else "" if p == ANY_CHARS else p for p in test.parts
            )
            values = [text if test.literal is not None else text or "x"]
        else:
            values = [v for v in _OTHER if not _text_matches(test, v)]
    elif isinstance(test, RegexMatch):
        if want:
            values = list(_regex_candidates(test.pattern))
        else:
            values = [v for v in _OTHER if v is None or not re.search(test.pattern, v)]
    elif isinstance(test, Compare):
        below, above = test.number - 1, test.number + 1
        holds = {"lt": below, "lte": test.number, "gt": above, "gte": test.number}
        fails = {"lt": test.number, "lte": above, "gt": test.number, "gte": below}
        if test.op == "neq":
            values = [f"{above:g}" if want else f"{test.number:g}"]
        else:
            values = [f"{(holds if want else fails)[test.op]:g}"]
    elif isinstance(test, IsNull):
        values = [None] if want else ["x"]
    else:
        assert isinstance(test, Exists)
        values = ["x"] if want == test.exists else [None]
    for value in values:
        yield {field: (value,)}


def _merged(first: Assignment, second: Assignment) -> Assignment | None:
    merged = dict(first)
    for field, values in second.items():
        if field not in merged:
            merged[field] = values
        elif field in JSON_OBJECTS and None not in values and None not in merged[field]:
            merged[field] = merged[field] + values
        elif merged[field] != values:
            if None in values or None in merged[field]:
                return None
            # Two tests of one field (``contains|all``): both texts, one after the other; the
            # caller keeps the example only if the compiled rule agrees.
            merged[field] = ("".join(str(v) for v in merged[field] + values),)
    return merged


def _all_of(alternatives: list[Iterator[Assignment]]) -> Iterator[Assignment]:
    options = [list(itertools.islice(a, _BRANCHES)) for a in alternatives]
    for combination in itertools.product(*options):
        merged: Assignment | None = {}
        for part in combination:
            merged = _merged(merged, part) if merged is not None else None
        if merged is not None:
            yield merged


def _assignments(node: Node, want: bool) -> Iterator[Assignment]:
    if isinstance(node, Leaf):
        yield from _leaf(node, want)
    elif isinstance(node, Not):
        yield from _assignments(node.child, not want)
    elif isinstance(node, AllOf) == want:  # every child must hold (or, for OR, every one fail)
        yield from _all_of([_assignments(c, want) for c in node.children])
    else:  # one child is enough
        for child in node.children:
            yield from _assignments(child, want)


def positive_assignments(node: Node) -> Iterator[Assignment]:
    return _assignments(node, True)


def negative_assignments(node: Node) -> Iterator[Assignment]:
    return _assignments(node, False)


def _set(record: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    target = record
    for key in parents:
        nested = target.get(key)
        if not isinstance(nested, dict):
            nested = target[key] = {}
        target = nested
    if value is None:
        target.pop(last, None)
    else:
        target[last] = value


def example_record(assignment: Assignment) -> dict[str, Any]:
    """A CloudTrail record, as AWS writes it, holding the assignment's values."""
    record: dict[str, Any] = {
        "eventVersion": "1.08",
        "eventTime": "2024-05-01T12:00:00Z",
        "eventSource": "example.amazonaws.com",
        "eventName": "ExampleCall",
        "eventType": "AwsApiCall",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.10",
        "userAgent": "aws-cli/2.15.0",
        "recipientAccountId": EXAMPLE_ACCOUNT,
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLEUSERID",
            "arn": f"arn:aws:iam::{EXAMPLE_ACCOUNT}:user/alice",
            "accountId": EXAMPLE_ACCOUNT,
            "accessKeyId": "AKIAEXAMPLEKEYID",
            "userName": "alice",
        },
        "requestParameters": None,
        "responseElements": None,
    }
    whole = {f: v for f, v in assignment.items() if f in JSON_OBJECTS}
    plain = {f: v[0] for f, v in assignment.items() if f not in JSON_OBJECTS}
    derived = {
        path: value
        for field, text in plain.items()
        if text is not None
        for path, value in record_paths(field, text).items()
        if path not in plain
    }
    for path, value in (derived | plain).items():
        _set(record, path, value)
    for field, fragments in whole.items():
        if fragments == (None,):
            record[field] = None
            continue
        nested = record.get(field)
        target: dict[str, Any] = nested if isinstance(nested, dict) else {}
        target.update({f"sigmaExample{i}": f for i, f in enumerate(fragments)})
        record[field] = target
    return record
