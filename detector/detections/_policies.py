"""Reading IAM and resource policy documents: who a policy lets in, and whether it grants all.

Policies reach CloudTrail as JSON text inside ``requestParameters`` (sometimes URL-encoded,
sometimes already an object), with the grammar's many shapes: ``Statement`` as an object or a
list, ``Principal`` as ``"*"`` or ``{"AWS": str | [str]}``, ``Action`` as a string or a list.
These functions accept all of them and never raise on a malformed document (it grants
nothing). Imports: the standard library only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import unquote

__all__ = [
    "PUBLIC",
    "account_of",
    "grantee_outside",
    "grants_everything",
    "outside_grantees",
    "policy_document",
    "statements",
]

PUBLIC: Final = "*"  # the grantee reported for "anyone"

# Condition keys that pin who may use a grant. A statement open to "*" with one of these is a
# scoped grant (an SNS topic's ARN, the organisation's id), not a public one. sts:ExternalId is
# deliberately absent: it is a shared string, not an identity.
_RESTRICTING_KEYS: Final = frozenset(
    {
        "aws:sourcearn",
        "aws:sourceaccount",
        "aws:sourceowner",
        "aws:sourceorgid",
        "aws:sourceorgpaths",
        "aws:principalaccount",
        "aws:principalarn",
        "aws:principalorgid",
        "aws:principalorgpaths",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "aws:sourceip",
        "aws:userid",
        "kms:calleraccount",
    }
)
_ACCOUNT_ID: Final = re.compile(r"\d{12}")
_ARN_ACCOUNT: Final = re.compile(r"arn:aws[a-z-]*:(?:iam|sts)::(\d{12}|\*):")


def policy_document(value: Any) -> dict[str, Any] | None:
    """The policy as a dict, from a dict, JSON text or URL-encoded JSON text; else None."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.startswith("%7B"):
        text = unquote(text)
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def statements(document: Any) -> list[dict[str, Any]]:
    """The ``Allow`` statements of a policy (a ``Deny`` never grants)."""
    doc = policy_document(document)
    if doc is None:
        return []
    return [
        s
        for s in _listed(doc.get("Statement"))
        if isinstance(s, dict) and str(s.get("Effect", "")).lower() == "allow"
    ]


def account_of(principal: str) -> str | None:
    """The account a principal string names: a 12-digit id or an IAM/STS ARN's account
    (``"*"`` for ``arn:aws:iam::*:root``); None for anything else (service names, unique
    ids)."""
    if _ACCOUNT_ID.fullmatch(principal):
        return principal
    found = _ARN_ACCOUNT.match(principal)
    return found.group(1) if found else None


_ORGANIZATION_ARN: Final = re.compile(
    r"arn:aws[a-z-]*:organizations::\d{12}:(?:organization|ou)/o-"
)


def grantee_outside(
    grantee: str, own_account: str | None, trusted: Iterable[str] = ()
) -> str | None:
    """What a grantee of a sharing call (a launch or restore permission, an SQS AddPermission)
    means, when it means someone outside: ``"*"`` for ``all``/``*``, the account of a 12-digit
    id or IAM/STS ARN of another account, or the organisation/OU ARN itself (an organisation
    is as wide as the grant gets, and whether it is ours the event does not say).
    None for our own or a trusted account, and for anything else (a group such as ``not-all``,
    a user name, a service): such strings name no account, so they share nothing outside."""
    text = grantee.strip()
    if text.lower() == "all" or text == PUBLIC:
        return PUBLIC
    if _ORGANIZATION_ARN.match(text):
        return text
    account = account_of(text)
    if account == PUBLIC:
        return PUBLIC
    if account is None or account == own_account or account in set(trusted):
        return None
    return account


def _grantees(statement: dict[str, Any]) -> list[str]:
    if "NotPrincipal" in statement:
        return [PUBLIC]  # Allow + NotPrincipal: everyone but the few named
    principal = statement.get("Principal")
    if principal == PUBLIC:
        return [PUBLIC]
    if isinstance(principal, dict):
        return [p for p in _listed(principal.get("AWS")) if isinstance(p, str)]
    return []


def _is_scoped(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition")
    if not isinstance(condition, dict):
        return False
    return any(
        isinstance(keys, dict) and any(str(k).lower() in _RESTRICTING_KEYS for k in keys)
        for keys in condition.values()
    )


def outside_grantees(
    document: Any, own_account: str | None, trusted_accounts: Iterable[str] = ()
) -> list[str]:
    """Who outside ``own_account`` (and the trusted accounts) the policy lets in.

    ``"*"`` when a statement is open to anyone without a condition pinning the caller
    (:data:`_RESTRICTING_KEYS`); otherwise each other account named, in order of appearance.
    With no ``own_account`` only public grants can be told apart.
    """
    trusted = set(trusted_accounts)
    found: list[str] = []
    for statement in statements(document):
        for grantee in _grantees(statement):
            account = account_of(grantee)
            if grantee == PUBLIC or account == PUBLIC:
                if not _is_scoped(statement):
                    found.append(PUBLIC)
            elif (
                account is not None
                and own_account is not None
                and account != own_account
                and account not in trusted
            ):
                found.append(account)
    return list(dict.fromkeys(found))


def _any_is(values: Any, wanted: set[str]) -> bool:
    return any(isinstance(v, str) and v in wanted for v in _listed(values))


def grants_everything(document: Any) -> bool:
    """Whether a statement allows every action on every resource (``Action: "*"``)."""
    return any(
        _any_is(s.get("Action"), {"*", "*:*"}) and _any_is(s.get("Resource"), {"*"})
        for s in statements(document)
    )
