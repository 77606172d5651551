"""Detections of IAM persistence and privilege escalation: admin rights granted, credentials
made for someone else, roles opened to outsiders, long-lived federation tokens, new trust
anchors, leaving the organisation.

Imports: polars, orjson, this package's vocabulary, policies and examples.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
import polars as pl

from detector.detections._detection import Detection
from detector.detections._examples import (
    ACCOUNT,
    OTHER_ACCOUNT,
    api_call,
    iam_user,
    role_session,
    service,
)
from detector.detections._expressions import (
    calls,
    matched_by,
    matched_by_grantees,
    param,
    succeeded,
    where,
)
from detector.detections._policies import grants_everything, outside_grantees

__all__ = [
    "IAM_ADMIN_POLICY_GRANTED",
    "IAM_CREDENTIALS_CREATED_FOR_ANOTHER_USER",
    "IAM_ROLES_ANYWHERE_TRUST_ANCHOR_CREATED",
    "IAM_ROLE_TRUST_OPENED",
    "ORGANIZATION_LEAVE_ATTEMPTED",
    "STS_FEDERATION_TOKEN_WITH_BROAD_POLICY",
]

_IAM: Final = "iam.amazonaws.com"
_ADMIN_POLICY_SUFFIX: Final = ":iam::aws:policy/AdministratorAccess"
_TARGET_KEYS: Final = ("userName", "roleName", "groupName", "policyArn")


def _policy(*statements: dict[str, Any]) -> str:
    return orjson.dumps({"Version": "2012-10-17", "Statement": list(statements)}).decode()


_ALLOW_ALL: Final = {"Effect": "Allow", "Action": "*", "Resource": "*"}
_READ_S3: Final = {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::b/*"}


def _admin_grant(event_name: str, request_parameters: str | None) -> dict[str, Any] | None:
    params = orjson.loads(request_parameters) if request_parameters else None
    if not isinstance(params, dict):
        return None
    target = next((params[k] for k in _TARGET_KEYS if isinstance(params.get(k), str)), None)
    if event_name.startswith("Attach"):
        arn = params.get("policyArn")
        if isinstance(arn, str) and arn.endswith(_ADMIN_POLICY_SUFFIX):
            return {"target": target, "policy": arn}
        return None
    if event_name == "CreatePolicyVersion" and params.get("setAsDefault") is not True:
        return None  # a non-default version grants nothing until someone makes it default
    if grants_everything(params.get("policyDocument")):
        name = params.get("policyName") or params.get("policyArn")
        return {"target": target, "policy": f"inline {name}: Allow * on *"}
    return None


IAM_ADMIN_POLICY_GRANTED = Detection(
    id="iam_admin_policy_granted",
    title="Administrator access granted to an IAM user, role or group",
    description="AdministratorAccess was attached to a user, role or group, or a policy "
    "allowing every action on every resource was put inline or made the default version of a "
    "managed policy: the classic step after creating a backdoor user or role.",
    severity=6.0,
    mitre=("T1098.003",),
    selects=calls(
        _IAM,
        "AttachUserPolicy",
        "AttachRolePolicy",
        "AttachGroupPolicy",
        "PutUserPolicy",
        "PutRolePolicy",
        "PutGroupPolicy",
        "CreatePolicyVersion",
    ),
    matches=matched_by(_admin_grant, "event_name", "request_parameters"),
    positives=(
        (
            api_call(
                _IAM,
                "CreateUser",
                {"userName": "backup-svc"},
                event_time="2024-05-01T11:59:58Z",
            ),
            api_call(
                _IAM,
                "AttachUserPolicy",
                {
                    "userName": "backup-svc",
                    "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess",
                },
            ),
        ),
        (
            api_call(
                _IAM,
                "AttachRolePolicy",
                {"roleName": "ci", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
                identity=role_session(),
            ),
        ),
        (
            api_call(
                _IAM,
                "PutUserPolicy",
                {"userName": "bob", "policyName": "ops", "policyDocument": _policy(_ALLOW_ALL)},
            ),
        ),
        (
            api_call(
                _IAM,
                "CreatePolicyVersion",
                {
                    "policyArn": f"arn:aws:iam::{ACCOUNT}:policy/ci-deploy",
                    "policyDocument": _policy(_ALLOW_ALL),
                    "setAsDefault": True,
                },
            ),
        ),
    ),
    negatives=(
        (
            api_call(
                _IAM,
                "AttachUserPolicy",
                {"userName": "bob", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
            ),
        ),
        (
            api_call(
                _IAM,
                "AttachRolePolicy",
                {
                    "roleName": "ci",
                    "policyArn": f"arn:aws:iam::{ACCOUNT}:policy/NotAdministratorAccess",
                },
            ),
        ),
        (
            api_call(
                _IAM,
                "PutRolePolicy",
                {"roleName": "app", "policyName": "read", "policyDocument": _policy(_READ_S3)},
            ),
        ),
        (
            api_call(
                _IAM,
                "CreatePolicyVersion",
                {
                    "policyArn": f"arn:aws:iam::{ACCOUNT}:policy/ci-deploy",
                    "policyDocument": _policy(_ALLOW_ALL),
                    "setAsDefault": False,
                },
            ),
        ),
    ),
    anchors=(
        "GuardDuty: PrivilegeEscalation:IAMUser/AnomalousBehavior",
        "Panther: AWS.IAM.AttachAdminUserPolicy, AWS.IAM.AttachAdminRolePolicy",
        "Sigma: aws_iam_attach_critical_managed_policy, aws_iam_privileged_inline_policy_creation",
        "Stratus: aws.persistence.iam-create-admin-user",
    ),
)

_TARGET_USER = param("$.userName")
# The caller's own user name: an IAM user's name CloudTrail vouches for. A role session's name
# (or source identity) is chosen by whoever assumed the role, so it is trusted only for a
# password, what people change on their own user through a federated session; an access key
# made "for yourself" from a role session is still a key for another principal.
_OWN_USER = pl.when(pl.col("principal_type") == "IAMUser").then(pl.col("session_name"))
_PASSWORD = pl.col("event_name").is_in(["CreateLoginProfile", "UpdateLoginProfile"])
_OWN_PASSWORD = (
    _PASSWORD
    & (pl.col("principal_type") == "AssumedRole")
    & (
        (_TARGET_USER.str.to_lowercase() == pl.col("session_name").str.to_lowercase())
        | (_TARGET_USER.str.to_lowercase() == pl.col("source_identity").str.to_lowercase())
    ).fill_null(False)
)

IAM_CREDENTIALS_CREATED_FOR_ANOTHER_USER = Detection(
    id="iam_credentials_created_for_another_user",
    title="Access key or console password created for another IAM user",
    description="An access key (CreateAccessKey) or console password (CreateLoginProfile, "
    "UpdateLoginProfile) was made for a user other than the caller: a way to keep access as "
    "someone else. Creating your own key does not count, nor a role session changing the "
    "password of the IAM user its session name or source identity names (a person's own); "
    "other role sessions count as 'another'. Root making its own key (no userName) is "
    "root_credential_use's.",
    severity=6.0,
    mitre=("T1098.001",),
    selects=calls(_IAM, "CreateAccessKey", "CreateLoginProfile", "UpdateLoginProfile"),
    matches=where(
        succeeded()
        & _TARGET_USER.is_not_null()
        & _TARGET_USER.ne_missing(_OWN_USER)
        & ~_OWN_PASSWORD,
        target_user=_TARGET_USER,
        credential=pl.col("event_name"),
    ),
    positives=(
        (api_call(_IAM, "CreateAccessKey", {"userName": "bob"}),),
        (
            api_call(
                _IAM,
                "CreateLoginProfile",
                {"userName": "bob", "passwordResetRequired": False},
                identity=role_session(),
            ),
        ),
        (api_call(_IAM, "UpdateLoginProfile", {"userName": "alice-admin"}),),
        # A role session changing the password of a user other than the one it names.
        (
            api_call(
                _IAM,
                "UpdateLoginProfile",
                {"userName": "bob"},
                identity=role_session("platform-admin", "alice"),
            ),
        ),
        # A role session named after the user still may not make that user an access key.
        (api_call(_IAM, "CreateAccessKey", {"userName": "alice"}, identity=role_session()),),
    ),
    negatives=(
        (api_call(_IAM, "CreateAccessKey", {"userName": "alice"}),),
        (api_call(_IAM, "CreateAccessKey", None),),
        (api_call(_IAM, "CreateAccessKey", {"userName": "bob"}, error_code="LimitExceeded"),),
        # alice, through her federated session, changes her own IAM user's password.
        (
            api_call(
                _IAM,
                "UpdateLoginProfile",
                {"userName": "alice"},
                identity=role_session("platform-admin", "alice"),
            ),
        ),
        (
            api_call(
                _IAM,
                "UpdateLoginProfile",
                {"userName": "Alice"},
                identity={
                    **role_session("platform-admin", "a1b2c3"),
                    "sessionContext": {
                        **role_session()["sessionContext"],
                        "sourceIdentity": "alice",
                    },
                },
            ),
        ),
    ),
    anchors=(
        "GuardDuty: Persistence:IAMUser/AnomalousBehavior",
        "Panther: AWS.IAM.Backdoor.User.Keys, AWS.CloudTrail.LoginProfileCreatedOrModified",
        "Sigma: aws_iam_backdoor_users_keys",
        "Stratus: aws.persistence.iam-backdoor-user, aws.persistence.iam-create-user-login-profile, "
        "aws.privilege-escalation.iam-update-user-login-profile",
    ),
)


def _trust_outside_grantees(
    trusted: frozenset[str],
    event_name: str,
    request_parameters: str | None,
    recipient_account_id: str | None,
) -> dict[str, Any] | None:
    params = orjson.loads(request_parameters) if request_parameters else None
    if not isinstance(params, dict):
        return None
    key = "policyDocument" if event_name == "UpdateAssumeRolePolicy" else "assumeRolePolicyDocument"
    granted = outside_grantees(params.get(key), recipient_account_id, trusted)
    return {"role": params.get("roleName"), "granted_to": granted} if granted else None


def _trust(principal: Any, condition: dict[str, Any] | None = None) -> str:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": "sts:AssumeRole",
    }
    if condition is not None:
        statement["Condition"] = condition
    return _policy(statement)


IAM_ROLE_TRUST_OPENED = Detection(
    id="iam_role_trust_opened",
    title="IAM role made assumable by anyone or by another account",
    description="A role's trust policy (UpdateAssumeRolePolicy, or CreateRole) lets anyone "
    '(Principal "*" without a condition pinning the caller; sts:ExternalId does not pin) or '
    "another AWS account assume it.",
    severity=6.0,
    mitre=("T1098.003",),
    selects=calls(_IAM, "UpdateAssumeRolePolicy", "CreateRole"),
    matches=matched_by_grantees(
        _trust_outside_grantees, "event_name", "request_parameters", "recipient_account_id"
    ),
    positives=(
        (
            api_call(
                _IAM,
                "UpdateAssumeRolePolicy",
                {
                    "roleName": "deploy",
                    "policyDocument": _trust({"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}),
                },
            ),
        ),
        (
            api_call(
                _IAM,
                "CreateRole",
                {
                    "roleName": "support",
                    "assumeRolePolicyDocument": _trust(
                        "*", {"StringEquals": {"sts:ExternalId": "12345"}}
                    ),
                },
                identity=role_session(),
            ),
        ),
    ),
    negatives=(
        (
            api_call(
                _IAM,
                "UpdateAssumeRolePolicy",
                {"roleName": "app", "policyDocument": _trust({"Service": "ec2.amazonaws.com"})},
            ),
        ),
        (
            api_call(
                _IAM,
                "CreateRole",
                {
                    "roleName": "admin",
                    "assumeRolePolicyDocument": _trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}),
                },
            ),
        ),
        (
            api_call(
                _IAM,
                "CreateRole",
                {
                    "roleName": "org-audit",
                    "assumeRolePolicyDocument": _trust(
                        {"AWS": "*"}, {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}
                    ),
                },
            ),
        ),
    ),
    anchors=(
        "Panther: AWS.IAM.BackdoorRole",
        "Sigma: aws_iam_assume_role_policy_updated",
        "Stratus: aws.persistence.iam-backdoor-role, aws.persistence.iam-create-backdoor-role",
    ),
)

_STS: Final = "sts.amazonaws.com"


def _broad_federation(request_parameters: str | None) -> dict[str, Any] | None:
    params = orjson.loads(request_parameters) if request_parameters else None
    if not isinstance(params, dict):
        return None
    arns = [p.get("arn") for p in params.get("policyArns") or () if isinstance(p, dict)]
    admin = [a for a in arns if isinstance(a, str) and a.endswith(_ADMIN_POLICY_SUFFIX)]
    if admin:
        return {"federated_user": params.get("name"), "policy": admin[0]}
    if grants_everything(params.get("policy")):
        return {"federated_user": params.get("name"), "policy": "session policy: Allow * on *"}
    return None


STS_FEDERATION_TOKEN_WITH_BROAD_POLICY = Detection(
    id="sts_federation_token_with_broad_policy",
    title="Federation token issued with all of the user's permissions",
    description="GetFederationToken was called with a session policy allowing every action "
    "(or AdministratorAccess): the token carries all of the IAM user's permissions for up to "
    "36 hours and outlives the deletion of the user's access keys. Without a policy the "
    "token has no permissions (AWS documents this), so that case does not fire.",
    severity=5.0,
    mitre=("T1550.001", "T1098"),
    selects=calls(_STS, "GetFederationToken"),
    matches=matched_by(_broad_federation, "request_parameters"),
    positives=(
        (
            api_call(
                _STS,
                "GetFederationToken",
                {"name": "backup", "policy": _policy(_ALLOW_ALL), "durationSeconds": 129600},
            ),
        ),
        (
            api_call(
                _STS,
                "GetFederationToken",
                {
                    "name": "backup",
                    "policyArns": [{"arn": "arn:aws:iam::aws:policy/AdministratorAccess"}],
                },
            ),
        ),
    ),
    negatives=(
        (
            api_call(
                _STS,
                "GetFederationToken",
                {"name": "upload", "policy": _policy(_READ_S3), "durationSeconds": 3600},
            ),
        ),
        (api_call(_STS, "GetFederationToken", {"name": "no-policy"}),),
    ),
    anchors=("Stratus: aws.persistence.sts-federation-token",),
)

_ROLES_ANYWHERE: Final = "rolesanywhere.amazonaws.com"

IAM_ROLES_ANYWHERE_TRUST_ANCHOR_CREATED = Detection(
    id="iam_roles_anywhere_trust_anchor_created",
    title="IAM Roles Anywhere trust anchor created or changed",
    description="A Roles Anywhere trust anchor was created or its certificate source changed: "
    "anyone holding a certificate from that source can then get role credentials from "
    "outside AWS.",
    severity=5.0,
    mitre=("T1098",),
    selects=calls(_ROLES_ANYWHERE, "CreateTrustAnchor", "UpdateTrustAnchor"),
    matches=where(
        succeeded(),
        trust_anchor=pl.coalesce(param("$.name"), param("$.trustAnchorId")),
        source_type=param("$.source.sourceType"),
    ),
    positives=(
        (
            api_call(
                _ROLES_ANYWHERE,
                "CreateTrustAnchor",
                {
                    "name": "partner-ca",
                    "enabled": True,
                    "source": {
                        "sourceType": "CERTIFICATE_BUNDLE",
                        "sourceData": {"x509CertificateData": "-----BEGIN CERTIFICATE-----..."},
                    },
                },
            ),
        ),
    ),
    negatives=(
        (api_call(_ROLES_ANYWHERE, "ListTrustAnchors", {}, read_only=True),),
        (
            api_call(
                _ROLES_ANYWHERE,
                "CreateTrustAnchor",
                {"name": "partner-ca", "enabled": True},
                error_code="AccessDeniedException",
            ),
        ),
    ),
    anchors=("Stratus: aws.persistence.rolesanywhere-create-trust-anchor",),
)

_ORGANIZATIONS: Final = "organizations.amazonaws.com"

ORGANIZATION_LEAVE_ATTEMPTED = Detection(
    id="organization_leave_attempted",
    title="Account tried to leave its AWS Organization",
    description="LeaveOrganization was called, successful or not: leaving sheds the "
    "organisation's SCPs, organisation trail and delegated security services. A failed "
    "attempt is reported too: the attempt is the signal.",
    severity=7.0,
    mitre=("T1666", "T1562.008"),
    selects=calls(_ORGANIZATIONS, "LeaveOrganization"),
    matches=where(pl.lit(True), error_code=pl.col("error_code")),
    positives=(
        (api_call(_ORGANIZATIONS, "LeaveOrganization"),),
        (
            api_call(
                _ORGANIZATIONS,
                "LeaveOrganization",
                identity=role_session(),
                error_code="AccessDeniedException",
            ),
        ),
    ),
    negatives=(
        (api_call(_ORGANIZATIONS, "DescribeOrganization", identity=iam_user(), read_only=True),),
        (
            api_call(
                _ORGANIZATIONS,
                "ListAccounts",
                identity=service("cloudformation.amazonaws.com"),
                read_only=True,
                source_ip="cloudformation.amazonaws.com",
            ),
        ),
    ),
    anchors=(
        "Panther: AWS.CloudTrail.AttemptToLeaveOrg",
        "Stratus: aws.defense-evasion.organizations-leave",
    ),
)

_QUARANTINE: Final = "AWSCompromisedKeyQuarantine"

AWS_COMPROMISED_KEY_QUARANTINE_ATTACHED = Detection(
    id="aws_compromised_key_quarantine_attached",
    title="AWS attached its compromised-key quarantine policy",
    description="An AWSCompromisedKeyQuarantine policy (any version) was attached to a user, "
    "role or group: AWS found this principal's access key exposed in public (a code "
    "repository, a paste) and fenced it. The key is known to be leaked; what it did before "
    "and after is the question.",
    severity=7.0,
    mitre=("T1552.001", "T1078.004"),
    selects=calls(_IAM, "AttachUserPolicy", "AttachRolePolicy", "AttachGroupPolicy"),
    matches=where(
        succeeded() & param("$.policyArn").str.contains(_QUARANTINE, literal=True).fill_null(False),
        policy=param("$.policyArn"),
        user=param("$.userName"),
        role=param("$.roleName"),
        group=param("$.groupName"),
    ),
    positives=(
        (
            api_call(
                _IAM,
                "AttachUserPolicy",
                {
                    "userName": "ci-legacy",
                    "policyArn": "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3",
                },
                identity=service("support.amazonaws.com"),
            ),
        ),
        (
            api_call(
                _IAM,
                "AttachUserPolicy",
                {
                    "userName": "ci-legacy",
                    "policyArn": "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantine",
                },
            ),
        ),
    ),
    negatives=(
        (
            api_call(
                _IAM,
                "AttachUserPolicy",
                {"userName": "ci-legacy", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
            ),
        ),
        (
            api_call(
                _IAM,
                "DetachUserPolicy",
                {
                    "userName": "ci-legacy",
                    "policyArn": "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3",
                },
            ),
        ),
    ),
    anchors=(
        "GuardDuty: none (AWS Health sends AWS_RISK_CREDENTIALS_EXPOSED)",
        "Panther: none found",
        "Sigma: none found",
    ),
)
