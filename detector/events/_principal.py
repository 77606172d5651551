"""One stable key per actor, from ``userIdentity``.

A key names *whose behaviour we learn*. The rules, by ``userIdentity.type``:

=====================  ===================================================================
type                   key
=====================  ===================================================================
Root                   ``arn:aws:iam::111122223333:root``
IAMUser                the user ARN, ``arn:aws:iam::111122223333:user/alice``
AssumedRole, workload  the session issuer's role ARN, ``arn:aws:iam::1111:role/app``; the
                       session name (``i-0abc...``, a task id, a function name) stays in its
                       own column, so every instance of one workload shares one profile
AssumedRole, person    role ARN + ``#`` + person: ``arn:aws:iam::1111:role/aws-reserved/sso.
                       amazonaws.com/AWSReservedSSO_Admin_0a1b#alice@example.com``. A role is
                       "assumed by people" when the issuer is an IAM Identity Center
                       permission set (``AWSReservedSSO_*``), when ``sourceIdentity`` is set
                       (it names the person), or when the session name is an e-mail address
                       (SAML/OIDC federation puts the person there)
Role                   the role ARN (rare: some service-originated events)
FederatedUser          the issuer + ``#`` + federated name, ``arn:aws:iam::1111:user/bob#
                       tool`` (GetFederationToken sessions of one IAM user)
SAMLUser               ``saml:<identityProvider>#<userName>``
WebIdentityUser        ``web-identity:<identityProvider>#<userName or principalId>``
IdentityCenterUser     ``identity-center:<identityStoreArn>#<onBehalfOf.userId>``
AWSService             ``service:<invokedBy>``, e.g. ``service:cloudtrail.amazonaws.com``
AWSAccount             ``account:<accountId>`` (+ ``#<invokedBy>`` when a service called)
Unknown                ``unknown:<accountId>#<userName or principalId>``
missing                ``missing:<recipientAccountId>``
=====================  ===================================================================

The ARN as the event shows it is kept beside the key (``principal_arn``): for a role session
that is the ``assumed-role/<role>/<session>`` ARN, which is what a responder searches for.
Imports: nothing but the standard library.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["Principal", "principal_of"]

_SSO_MARKER = "AWSReservedSSO_"


class Principal(NamedTuple):
    key: str
    type: str
    arn: str | None
    session_issuer_arn: str | None
    session_name: str | None
    source_identity: str | None


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _looks_like_person(session_name: str | None) -> bool:
    # An e-mail shaped session name is what SAML/OIDC federation of people produces.
    return session_name is not None and "@" in session_name and "." in session_name


def _session_name_from_arn(arn: str | None) -> str | None:
    # arn:aws:sts::1111:assumed-role/<role>/<session>
    if arn is None or ":assumed-role/" not in arn:
        return None
    parts = arn.split("/", 2)
    return parts[2] if len(parts) == 3 else None


def _assumed_role(ui: dict[str, Any], ctx: dict[str, Any] | None) -> Principal:
    arn = _s(ui.get("arn"))
    issuer: dict[str, Any] = {}
    if ctx is not None:
        raw_issuer = ctx.get("sessionIssuer")
        if isinstance(raw_issuer, dict):
            issuer = raw_issuer
    issuer_arn = _s(issuer.get("arn"))
    session = _session_name_from_arn(arn)
    source_identity = _s(ctx.get("sourceIdentity")) if ctx is not None else None
    role_key = issuer_arn or _role_arn_from_session_arn(arn) or arn or _fallback_id(ui)
    person = source_identity
    if person is None and (_SSO_MARKER in (issuer_arn or arn or "") or _looks_like_person(session)):
        person = session
    key = f"{role_key}#{person}" if person else role_key
    return Principal(key, "AssumedRole", arn, issuer_arn, session, source_identity)


def _role_arn_from_session_arn(arn: str | None) -> str | None:
    # arn:aws:sts::1111:assumed-role/app/i-0abc -> arn:aws:iam::1111:role/app (path is lost,
    # which is why the issuer ARN is preferred when present).
    if arn is None or ":assumed-role/" not in arn:
        return None
    head, _, rest = arn.partition(":assumed-role/")
    role = rest.split("/", 1)[0]
    partition_account = head.split(":")
    if len(partition_account) < 5:
        return None
    return f"arn:{partition_account[1]}:iam::{partition_account[4]}:role/{role}"


def _fallback_id(ui: dict[str, Any]) -> str:
    return f"unknown:{_s(ui.get('accountId')) or '-'}#{_s(ui.get('principalId')) or '-'}"


# Role sessions are most of a trail and repeat: their principal depends only on the session
# ARN, the issuer ARN and sourceIdentity, so it is computed once per distinct triple.
_SESSION_CACHE: dict[tuple[Any, Any, Any], Principal] = {}
_SESSION_CACHE_MAX = 65536


def _cached_assumed_role(ui: dict[str, Any]) -> Principal:
    raw_ctx = ui.get("sessionContext")
    ctx = raw_ctx if isinstance(raw_ctx, dict) else None
    if ctx is None:
        return _assumed_role(ui, None)
    issuer = ctx.get("sessionIssuer")
    issuer_arn = issuer.get("arn") if isinstance(issuer, dict) else None
    arn = ui.get("arn")
    if _s(issuer_arn) is None and _s(arn) is None:
        return _assumed_role(ui, ctx)  # the key falls back on accountId/principalId
    triple = (arn, issuer_arn, ctx.get("sourceIdentity"))
    try:
        hit = _SESSION_CACHE.get(triple)
    except TypeError:  # a malformed (unhashable) value: compute without the cache
        return _assumed_role(ui, ctx)
    if hit is None:
        if len(_SESSION_CACHE) >= _SESSION_CACHE_MAX:
            _SESSION_CACHE.clear()
        hit = _SESSION_CACHE[triple] = _assumed_role(ui, ctx)
    return hit


def principal_of(ui: Any, recipient_account: str | None) -> Principal:
    """The principal of one record's ``userIdentity`` (which may be absent or malformed)."""
    if isinstance(ui, dict) and ui.get("type") == "AssumedRole":
        return _cached_assumed_role(ui)
    if not isinstance(ui, dict):
        return Principal(f"missing:{recipient_account or '-'}", "Missing", None, None, None, None)
    kind = _s(ui.get("type")) or "Missing"
    arn = _s(ui.get("arn"))
    account = _s(ui.get("accountId"))
    raw_ctx = ui.get("sessionContext")
    ctx = raw_ctx if isinstance(raw_ctx, dict) else None
    if kind == "AssumedRole":
        return _assumed_role(ui, ctx)
    user_name = _s(ui.get("userName"))
    principal_id = _s(ui.get("principalId"))
    if kind == "Root":
        key = arn or f"arn:aws:iam::{account or recipient_account or '-'}:root"
    elif kind in ("IAMUser", "Role"):
        key = arn or _fallback_id(ui)
    elif kind == "FederatedUser":
        issuer = (ctx or {}).get("sessionIssuer")
        issuer_arn = _s(issuer.get("arn")) if isinstance(issuer, dict) else None
        name = arn.rsplit("/", 1)[-1] if arn else principal_id
        key = f"{issuer_arn}#{name}" if issuer_arn else (arn or _fallback_id(ui))
        return Principal(key, kind, arn, issuer_arn, name, None)
    elif kind in ("SAMLUser", "WebIdentityUser"):
        prefix = "saml" if kind == "SAMLUser" else "web-identity"
        key = f"{prefix}:{_s(ui.get('identityProvider')) or '-'}#{user_name or principal_id}"
    elif kind == "IdentityCenterUser":
        obo = ui.get("onBehalfOf")
        obo = obo if isinstance(obo, dict) else {}
        key = f"identity-center:{_s(obo.get('identityStoreArn')) or '-'}#{_s(obo.get('userId'))}"
        if _s(obo.get("userId")) is None:
            key = f"identity-center:{account or recipient_account or '-'}#{principal_id}"
    elif kind == "AWSService":
        key = f"service:{_s(ui.get('invokedBy')) or principal_id or '-'}"
    elif kind == "AWSAccount":
        invoked = _s(ui.get("invokedBy"))
        base = f"account:{account or principal_id or '-'}"
        key = f"{base}#{invoked}" if invoked else base
    elif kind == "Missing":
        key = f"missing:{recipient_account or '-'}"
    else:  # Unknown, and any type AWS adds later
        key = f"{kind.lower()}:{account or recipient_account or '-'}#{user_name or principal_id}"
    return Principal(key, kind, arn, None, user_name, None)
