"""A Sigma rule's condition as a small tree of our own, and that tree as polars expressions.

pySigma parses the rule and resolves its condition (``1 of selection_*``, ``not filter``...)
into a tree of AND/OR/NOT over field tests; :func:`condition_of` turns that tree into
:class:`Node` values, refusing (:class:`UnsupportedError`, with the reason) any value or
construct we cannot evaluate faithfully. :func:`expression` and :func:`preselection` are pure
functions of the tree; the example generator walks the same tree.

Sigma's semantics kept here: strings match case-insensitively unless ``|cased``; ``*`` and
``?`` are wildcards; a test on a field the event lacks is false (so ``not`` of it is true);
``|re`` searches anywhere in the value (Rust regex syntax: no look-around or back-references).

Imports: polars, pySigma, this package's field map.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, TypeAlias

import polars as pl
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

from detector.sigma._fields import field_expr, is_plain_field

__all__ = [
    "ANY_CHARS",
    "ONE_CHAR",
    "AllOf",
    "AnyOf",
    "Compare",
    "Exists",
    "IsNull",
    "Leaf",
    "Node",
    "Not",
    "RegexMatch",
    "SameAs",
    "TextLike",
    "UnsupportedError",
    "condition_of",
    "expression",
    "fields_of",
    "leaves",
    "preselection",
]

ANY_CHARS: Final = "\x00*"  # a '*' wildcard among the parts of a pattern
ONE_CHAR: Final = "\x00?"  # a '?' wildcard
_REGEX_META: Final = frozenset("\\.+*?()|[]{}^$#&-~")
_FLAGS: Final = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}


class UnsupportedError(ValueError):
    """The rule uses a value, modifier or construct we cannot compile; the message says which."""


@dataclass(frozen=True, slots=True)
class TextLike:
    """The value is ``parts`` (literals, :data:`ANY_CHARS`, :data:`ONE_CHAR`)."""

    parts: tuple[str, ...]
    cased: bool = False

    @property
    def literal(self) -> str | None:
        """The whole value when there is no wildcard."""
        return None if any(p in (ANY_CHARS, ONE_CHAR) for p in self.parts) else "".join(self.parts)


@dataclass(frozen=True, slots=True)
class RegexMatch:
    pattern: str  # with its flags inline, e.g. "(?i)..."


@dataclass(frozen=True, slots=True)
class IsNull:
    pass


@dataclass(frozen=True, slots=True)
class Exists:
    exists: bool


@dataclass(frozen=True, slots=True)
class SameAs:
    """The value equals (starts with, ends with, contains) another field's value."""

    other: str
    starts_with: bool = False
    ends_with: bool = False


@dataclass(frozen=True, slots=True)
class Compare:
    """The value, read as a number, compared with ``number`` (``lt``, ``lte``, ``gt``, ``gte``,
    ``neq``); a value that is not a number fails."""

    op: str
    number: float


Test: TypeAlias = TextLike | RegexMatch | IsNull | Exists | SameAs | Compare


@dataclass(frozen=True, slots=True)
class Leaf:
    field: str
    test: Test


@dataclass(frozen=True, slots=True)
class AllOf:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


Node: TypeAlias = Leaf | AllOf | AnyOf | Not


def _test_of(value: object) -> Test:
    if isinstance(value, SigmaString):  # SigmaCasedString included
        parts: list[str] = []
        for part in value.iter_parts():
            if isinstance(part, str):
                parts.append(part)
            elif part == SpecialChars.WILDCARD_MULTI:
                parts.append(ANY_CHARS)
            elif part == SpecialChars.WILDCARD_SINGLE:
                parts.append(ONE_CHAR)
            else:
                raise UnsupportedError(f"placeholder {part!r} needs a value from a pipeline")
        return TextLike(tuple(parts), cased=isinstance(value, SigmaCasedString))
    if isinstance(value, SigmaBool):
        return TextLike(("true" if value.boolean else "false",))
    if isinstance(value, SigmaNumber):
        return TextLike((str(value.number),))
    if isinstance(value, SigmaNull):
        return IsNull()
    if isinstance(value, SigmaExists):
        return Exists(value.exists)
    if isinstance(value, SigmaFieldReference):
        return SameAs(value.field, value.starts_with, value.ends_with)
    if isinstance(value, SigmaCompareExpression):
        return Compare(value.op.name.lower(), float(value.number.number))
    if isinstance(value, SigmaRegularExpression):
        flags = "".join(sorted(_FLAGS[f] for f in value.flags))
        pattern = (f"(?{flags})" if flags else "") + str(value.regexp)
        _check_regex(pattern)
        return RegexMatch(pattern)
    raise UnsupportedError(f"value type {type(value).__name__} ({value}) is not supported")


def _check_regex(pattern: str) -> None:
    try:
        pl.Series([""], dtype=pl.String).str.contains(pattern)
    except pl.exceptions.ComputeError as err:
        raise UnsupportedError(f"regular expression {pattern!r}: {err}") from err


def condition_of(item: object) -> Node:
    """Our tree of pySigma's parsed condition (``rule.detection.parsed_condition[i].parse()``)."""
    if isinstance(item, ConditionFieldEqualsValueExpression):
        if item.field is None:
            raise UnsupportedError("a test without a field")
        field_expr(item.field)  # refuses a field we do not keep
        if isinstance(item.value, SigmaExpansion):  # base64offset, windash: any of the values
            return AnyOf(tuple(Leaf(item.field, _test_of(v)) for v in item.value.values))
        if isinstance(item.value, SigmaCIDRExpression):  # the address's prefixes, as text
            prefixes = item.value.expand(wildcard="*")
            return AnyOf(tuple(Leaf(item.field, _test_of(SigmaString(p))) for p in prefixes))
        test = _test_of(item.value)
        if isinstance(test, SameAs):
            field_expr(test.other)
        return Leaf(item.field, test)
    if isinstance(item, ConditionValueExpression):
        raise UnsupportedError(f"keyword search {item.value} (a value without a field)")
    if isinstance(item, ConditionAND):
        return AllOf(tuple(condition_of(a) for a in item.args))
    if isinstance(item, ConditionOR):
        return AnyOf(tuple(condition_of(a) for a in item.args))
    if isinstance(item, ConditionNOT):
        return Not(condition_of(item.args[0]))
    raise UnsupportedError(f"condition element {type(item).__name__} is not supported")


def leaves(node: Node) -> Iterator[Leaf]:
    if isinstance(node, Leaf):
        yield node
    elif isinstance(node, Not):
        yield from leaves(node.child)
    else:
        for child in node.children:
            yield from leaves(child)


def fields_of(node: Node) -> tuple[str, ...]:
    """The fields the condition reads, in order of first use."""
    found: dict[str, None] = {}
    for leaf in leaves(node):
        found[leaf.field] = None
        if isinstance(leaf.test, SameAs):
            found[leaf.test.other] = None
    return tuple(found)


def _escaped(text: str) -> str:
    return "".join("\\" + c if c in _REGEX_META else c for c in text)


def _pattern(test: TextLike) -> str:
    """The regular expression of a wildcard value, unanchored where it starts or ends with
    ``*`` (a search for ``abc`` is cheaper than a match of ``^.*abc.*$``)."""
    parts = list(test.parts)
    starts_open = bool(parts) and parts[0] == ANY_CHARS
    ends_open = len(parts) > 1 and parts[-1] == ANY_CHARS
    body = "".join(
        ".*" if p == ANY_CHARS else "." if p == ONE_CHAR else _escaped(p)
        for p in parts[int(starts_open) : len(parts) - int(ends_open)]
    )
    return ("" if starts_open else "^") + body + ("" if ends_open else "$")


def _like(value: pl.Expr, test: TextLike) -> pl.Expr:
    if all(p == ANY_CHARS for p in test.parts) and test.parts:
        return value.is_not_null()
    if test.cased and test.literal is not None:
        return value == test.literal
    # One case-insensitive regular expression: cheaper than lower-casing the column per test.
    return value.str.contains(("(?s)" if test.cased else "(?is)") + _pattern(test))


def _any_of_texts(field: str, tests: list[TextLike]) -> pl.Expr:
    """Several case-insensitive values of one field (a Sigma list) as one alternation."""
    alternatives = "|".join(_pattern(t) for t in tests)
    return field_expr(field).str.contains(f"(?is)(?:{alternatives})").fill_null(False)


def _leaf_expression(leaf: Leaf) -> pl.Expr:
    value = field_expr(leaf.field)
    test = leaf.test
    if isinstance(test, TextLike):
        found = _like(value, test)
    elif isinstance(test, RegexMatch):
        found = value.str.contains(test.pattern)
    elif isinstance(test, IsNull):
        found = value.is_null()
    elif isinstance(test, Exists):
        found = value.is_not_null() if test.exists else value.is_null()
    elif isinstance(test, Compare):
        number = value.cast(pl.Float64, strict=False)
        found = {
            "lt": number < test.number,
            "lte": number <= test.number,
            "gt": number > test.number,
            "gte": number >= test.number,
            "neq": number != test.number,
        }[test.op]
    else:
        mine, other = value.str.to_lowercase(), field_expr(test.other).str.to_lowercase()
        if test.starts_with and test.ends_with:
            found = mine.str.contains(other, literal=True)
        elif test.starts_with:
            found = mine.str.starts_with(other)
        elif test.ends_with:
            found = mine.str.ends_with(other)
        else:
            found = mine == other
    return found.fill_null(False)  # a missing field fails the test, and `not` of it holds


def expression(node: Node) -> pl.Expr:
    """The whole condition as one boolean expression (never null)."""
    if isinstance(node, Leaf):
        return _leaf_expression(node)
    if isinstance(node, Not):
        return ~expression(node.child)
    if isinstance(node, AllOf):
        return pl.all_horizontal([expression(c) for c in node.children])
    texts: dict[str, list[TextLike]] = {}
    others: list[pl.Expr] = []
    for child in node.children:
        test = child.test if isinstance(child, Leaf) else None
        if isinstance(child, Leaf) and isinstance(test, TextLike) and not test.cased:
            texts.setdefault(child.field, []).append(test)
        else:
            others.append(expression(child))
    merged = [_any_of_texts(field, tests) for field, tests in texts.items()]
    return pl.any_horizontal([*merged, *others])


def _is_plain(node: Node) -> bool:
    return all(
        is_plain_field(leaf.field)
        and (not isinstance(leaf.test, SameAs) or is_plain_field(leaf.test.other))
        for leaf in leaves(node)
    )


def _looser(node: Node) -> pl.Expr | None:
    """A condition that holds wherever ``node`` does, over plain columns only; None: always."""
    if _is_plain(node):
        return expression(node)
    if isinstance(node, Leaf | Not):
        return None  # a JSON lookup, or the negation of a condition that reads one
    parts = [_looser(c) for c in node.children]
    if isinstance(node, AllOf):
        kept = [p for p in parts if p is not None]
        return pl.all_horizontal(kept) if kept else None
    if any(p is None for p in parts):
        return None
    return pl.any_horizontal([p for p in parts if p is not None])


def preselection(node: Node) -> pl.Expr:
    """The detection's cheap ``selects``: no JSON parsing on the whole batch."""
    looser = _looser(node)
    return pl.lit(True) if looser is None else looser
