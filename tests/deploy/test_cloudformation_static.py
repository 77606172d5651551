"""The CloudFormation templates, statically: cfn-lint, then what the policies mean.

moto creates the stack (test_cloudformation_stack.py) but does not enforce queue or key
policies, so their effect is evaluated here, on the template resolved for a set of parameters:
the EventBridge rule may send, TLS is required, the optional VPC-endpoint deny blocks consumers
outside it and never the rule, and the IAM policies name no wildcard action.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from .policy_eval import Request, as_list, decide
from .template_model import PSEUDO_PARAMETERS, resolve_resources
from .validators import (
    CLOUDFORMATION_DIR,
    DETECTOR_TEMPLATE,
    MEMBER_TEMPLATE,
    load_template,
    run,
    tool,
)

ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE0123456789"
VPCE = "vpce-0a1b2c3d4e5f67890"
KEDA_ROLE = "arn:aws:iam::111122223333:role/keda-operator"
ALL_OPTIONS = {
    "EksOidcIssuer": ISSUER,
    "ConsumerVpcEndpointId": VPCE,
    "KedaOperatorRoleArn": KEDA_ROLE,
    "TrailBucketName": "org-cloudtrail-logs",
    "TrailPrefix": "AWSLogs/o-abcdefghij/",
    "TrailKmsKeyArn": "arn:aws:kms:eu-west-1:111122223333:key/0a1b2c3d-1111-2222-3333-444455556666",
    "StateTableArn": "arn:aws:dynamodb:eu-west-1:111122223333:table/detector-state",
    "OrganizationId": "o-abcdefghij",
    "PermissionsBoundaryArn": "arn:aws:iam::111122223333:policy/boundary",
    "SecurityHubFindings": "true",
    "FindingsEventBusName": "security-findings",
    "ScaleOut": "true",
    "KinesisShardCount": "4",
}
ONLY_REQUIRED = {"EksOidcIssuer": ISSUER}
QUEUES = ("InputQueue", "DeadLetterQueue", "EventsDeadLetterQueue", "FindingsQueue")
STATE_GRANTS = ("ListStateBucket", "ReadWriteStateObjects")
RULE_ARN = "{CloudTrailManagementEventsRule.Arn}"
SERVICE_ROLE_ARN = "{ServiceRole.Arn}"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(DETECTOR_TEMPLATE)


@pytest.fixture(scope="module")
def full(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resolve_resources(template, ALL_OPTIONS)


@pytest.fixture(scope="module")
def minimal(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resolve_resources(template, ONLY_REQUIRED)


def test_cfn_lint_is_clean() -> None:
    templates = sorted(CLOUDFORMATION_DIR.glob("*.yaml"))
    assert templates == sorted([DETECTOR_TEMPLATE, MEMBER_TEMPLATE])
    result = run([tool("cfn-lint"), "--format", "parseable", "--", *templates])
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stdout.strip(), result.stdout


# --- encryption and queues ----------------------------------------------------------------------


def test_key_rotates_and_is_used_by_the_rule_and_the_service(full: dict[str, Any]) -> None:
    key = full["Key"]["Properties"]
    assert key["EnableKeyRotation"] is True
    statements = {statement["Sid"]: statement for statement in key["KeyPolicy"]["Statement"]}
    root = statements["AccountRootAdministersKey"]
    assert root["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    events = statements["EventBridgeEncryptsIntoQueues"]
    assert events["Principal"] == {"Service": "events.amazonaws.com"}
    assert sorted(events["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert events["Condition"] == {"StringEquals": {"aws:SourceAccount": "111122223333"}}
    service = statements["ServiceRoleUsesKey"]
    assert service["Principal"] == {"AWS": SERVICE_ROLE_ARN}
    assert sorted(service["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]


def test_every_queue_is_encrypted_with_the_key(full: dict[str, Any]) -> None:
    queues = {name for name, res in full.items() if res["Type"] == "AWS::SQS::Queue"}
    assert queues == set(QUEUES)
    for name in QUEUES:
        assert full[name]["Properties"]["KmsMasterKeyId"] == "{Key.Arn}", name


def test_input_queue_redrives_to_a_14_day_dlq(full: dict[str, Any]) -> None:
    redrive = full["InputQueue"]["Properties"]["RedrivePolicy"]
    assert redrive == {"deadLetterTargetArn": "{DeadLetterQueue.Arn}", "maxReceiveCount": "5"}
    for dlq in ("DeadLetterQueue", "EventsDeadLetterQueue"):
        assert full[dlq]["Properties"]["MessageRetentionPeriod"] == 1209600


def test_rule_sends_all_management_events_to_the_input_queue(full: dict[str, Any]) -> None:
    rule = full["CloudTrailManagementEventsRule"]["Properties"]
    assert rule["State"] == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    assert rule["EventBusName"] == "default"
    assert rule["EventPattern"] == {
        "detail-type": [
            "AWS API Call via CloudTrail",
            "AWS Console Sign In via CloudTrail",
            "AWS Service Event via CloudTrail",
        ]
    }
    (target,) = rule["Targets"]
    assert target["Arn"] == "{InputQueue.Arn}"
    assert target["DeadLetterConfig"] == {"Arn": "{EventsDeadLetterQueue.Arn}"}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0


# --- queue policies, evaluated -------------------------------------------------------------------


def _queue_policies(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Queue logical name -> its policy document; each queue has exactly one."""
    policies: dict[str, dict[str, Any]] = {}
    for resource in resources.values():
        if resource["Type"] == "AWS::SQS::QueuePolicy":
            for queue_ref in resource["Properties"]["Queues"]:
                queue = queue_ref.strip("{}")
                assert queue not in policies, f"{queue} has two queue policies"
                policies[queue] = resource["Properties"]["PolicyDocument"]
    return policies


def _tls(secure: bool) -> dict[str, str]:
    return {"aws:SecureTransport": "true" if secure else "false"}


def _from_rule(action: str, queue: str, source_arn: str = RULE_ARN) -> Request:
    return Request(
        action=action,
        resource="{" + queue + ".Arn}",
        principal_service="events.amazonaws.com",
        context={**_tls(True), "aws:SourceArn": source_arn, "aws:PrincipalIsAWSService": "true"},
    )


def _from_role(action: str, queue: str, vpce: str | None = None, secure: bool = True) -> Request:
    context = {**_tls(secure), "aws:PrincipalIsAWSService": "false"}
    if vpce is not None:
        context["aws:SourceVpce"] = vpce
    return Request(
        action=action,
        resource="{" + queue + ".Arn}",
        principal_arn=SERVICE_ROLE_ARN,
        context=context,
    )


def _variants(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "with every option", resolve_resources(template, ALL_OPTIONS)
    yield "with only required parameters", resolve_resources(template, ONLY_REQUIRED)


def test_every_queue_has_a_policy(full: dict[str, Any], minimal: dict[str, Any]) -> None:
    assert set(_queue_policies(full)) == set(QUEUES)
    assert set(_queue_policies(minimal)) == set(QUEUES)


def test_only_the_rule_may_send_to_the_input_and_events_dlq(template: dict[str, Any]) -> None:
    for variant, resources in _variants(template):
        policies = _queue_policies(resources)
        for queue in ("InputQueue", "EventsDeadLetterQueue"):
            policy = policies[queue]
            assert decide(policy, _from_rule("sqs:SendMessage", queue)) == "allow", variant
            other_rule = "arn:aws:events:eu-west-1:444455556666:rule/someone-else"
            assert decide(policy, _from_rule("sqs:SendMessage", queue, other_rule)) == "no-decision"
            # The resource policy grants the service principal nothing else.
            assert decide(policy, _from_rule("sqs:ReceiveMessage", queue)) == "no-decision"


def test_every_queue_denies_requests_without_tls(template: dict[str, Any]) -> None:
    for variant, resources in _variants(template):
        for queue, policy in _queue_policies(resources).items():
            for action in ("sqs:SendMessage", "sqs:ReceiveMessage", "sqs:PurgeQueue"):
                request = _from_role(action, queue, vpce=VPCE, secure=False)
                assert decide(policy, request) == "deny", (variant, queue, action)


def test_vpc_endpoint_deny_blocks_consumers_outside_it_only(full: dict[str, Any]) -> None:
    policy = _queue_policies(full)["InputQueue"]
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"):
        assert decide(policy, _from_role(action, "InputQueue")) == "deny", action
        assert decide(policy, _from_role(action, "InputQueue", vpce="vpce-0other")) == "deny"
        assert decide(policy, _from_role(action, "InputQueue", vpce=VPCE)) == "no-decision"
    # Queue depth (KEDA, the service's own checks) is not a consumer action.
    assert decide(policy, _from_role("sqs:GetQueueAttributes", "InputQueue")) == "no-decision"


def test_vpc_endpoint_deny_never_blocks_eventbridge(full: dict[str, Any]) -> None:
    policy = _queue_policies(full)["InputQueue"]
    # EventBridge never comes through the consumers' endpoint: it must still be allowed.
    assert decide(policy, _from_rule("sqs:SendMessage", "InputQueue")) == "allow"
    (deny,) = [s for s in policy["Statement"] if s.get("Sid") == "DenyConsumeOutsideVpcEndpoint"]
    assert "sqs:SendMessage" not in deny["Action"]
    assert deny["Condition"]["BoolIfExists"] == {"aws:PrincipalIsAWSService": "false"}


def test_vpc_endpoint_deny_exists_only_with_the_parameter(minimal: dict[str, Any]) -> None:
    policy = _queue_policies(minimal)["InputQueue"]
    sids = {statement["Sid"] for statement in policy["Statement"]}
    assert sids == {"AllowOnlyTheRuleToSend", "DenyInsecureTransport"}
    assert decide(policy, _from_role("sqs:ReceiveMessage", "InputQueue")) == "no-decision"


def test_keda_may_read_the_queue_depth_and_nothing_else(full: dict[str, Any]) -> None:
    policy = _queue_policies(full)["InputQueue"]
    keda = Request(
        action="sqs:GetQueueAttributes",
        resource="{InputQueue.Arn}",
        principal_arn=KEDA_ROLE,
        context={**_tls(True), "aws:PrincipalIsAWSService": "false"},
    )
    assert decide(policy, keda) == "allow"
    receive = Request(**{**keda.__dict__, "action": "sqs:ReceiveMessage"})
    assert decide(policy, receive) == "deny"  # outside the endpoint, and never allowed anyway


# --- IAM ------------------------------------------------------------------------------------------


def _iam_statements(resources: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in resources.items():
        properties = resource["Properties"]
        documents = []
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(properties["PolicyDocument"])
        if resource["Type"] == "AWS::IAM::Role":
            documents += [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
        for document in documents:
            for statement in document["Statement"]:
                yield name, statement


@pytest.mark.parametrize("path", [DETECTOR_TEMPLATE, MEMBER_TEMPLATE], ids=lambda p: p.name)
def test_iam_policies_name_actions_and_resources(path: Any) -> None:
    template = load_template(path)
    parameters = (
        ALL_OPTIONS
        if path == DETECTOR_TEMPLATE
        else {"CentralEventBusArn": "arn:aws:events:eu-west-1:111122223333:event-bus/default"}
    )
    statements = list(_iam_statements(resolve_resources(template, parameters)))
    assert statements
    for name, statement in statements:
        assert statement["Effect"] == "Allow", name
        actions = as_list(statement["Action"])
        assert all("*" not in action for action in actions), (name, actions)
        assert "*" not in as_list(statement["Resource"]), name
        assert "NotAction" not in statement, name
        assert "NotResource" not in statement, name


def _actions_by_sid(resources: dict[str, Any]) -> dict[str, set[str]]:
    return {
        statement["Sid"]: set(as_list(statement["Action"]))
        for _, statement in _iam_statements(resources)
    }


def test_service_role_gets_exactly_what_the_service_needs(full: dict[str, Any]) -> None:
    assert _actions_by_sid(full) == {
        "ConsumeInputQueue": {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl",
        },
        "PublishFindings": {"sqs:SendMessage", "sqs:GetQueueAttributes"},
        "UseQueueKey": {"kms:Decrypt", "kms:GenerateDataKey"},
        "ImportFindings": {"securityhub:BatchImportFindings"},
        "PutFindingsOnBus": {"events:PutEvents", "events:DescribeEventBus"},
        "ListTrailPrefix": {"s3:ListBucket"},
        "ReadTrailObjects": {"s3:GetObject"},
        "DecryptTrailObjectsViaS3": {"kms:Decrypt"},
        "ListStateBucket": {"s3:ListBucket"},
        "ReadWriteStateObjects": {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
        "SharedStateStore": {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
            "dynamodb:ConditionCheckItem",
        },
        # scale-out: the router's role, and the consumers' read access to the stream
        "RouteInputQueue": {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
        },
        "DecryptInputQueue": {"kms:Decrypt"},
        "PutOnStream": {"kinesis:PutRecords", "kinesis:ListShards"},
        "EncryptIntoStream": {"kms:GenerateDataKey"},
        "ReadStreamShards": {
            "kinesis:ListShards",
            "kinesis:GetShardIterator",
            "kinesis:GetRecords",
        },
        "DecryptStream": {"kms:Decrypt"},
    }
    assert (
        full["ServiceRole"]["Properties"]["PermissionsBoundary"]
        == ALL_OPTIONS["PermissionsBoundaryArn"]
    )


def test_optional_grants_are_absent_without_their_parameters(minimal: dict[str, Any]) -> None:
    assert set(_actions_by_sid(minimal)) == {
        "ConsumeInputQueue",
        "PublishFindings",
        "UseQueueKey",
        *STATE_GRANTS,
    }
    assert "PermissionsBoundary" not in minimal["ServiceRole"]["Properties"]
    assert "OrganizationEventBusPolicy" not in minimal
    assert not {"FindingsEventBus", "FindingsAlertTopic", "HighSeverityFindingsRule"} & set(minimal)


def test_without_the_findings_queue_the_service_may_not_send_to_one(
    template: dict[str, Any],
) -> None:
    resources = resolve_resources(template, {**ONLY_REQUIRED, "FindingsQueueEnabled": "false"})
    assert "FindingsQueue" not in resources
    assert "FindingsQueuePolicy" not in resources
    assert set(_actions_by_sid(resources)) == {"ConsumeInputQueue", "UseQueueKey", *STATE_GRANTS}


def _statement(resources: dict[str, Any], sid: str) -> dict[str, Any]:
    (statement,) = [s for _, s in _iam_statements(resources) if s["Sid"] == sid]
    return statement


def test_security_hub_grant_is_the_accounts_own_integration_only(full: dict[str, Any]) -> None:
    account, region = PSEUDO_PARAMETERS["AWS::AccountId"], PSEUDO_PARAMETERS["AWS::Region"]
    assert _statement(full, "ImportFindings")["Resource"] == (
        f"arn:aws:securityhub:{region}:{account}:product/{account}/default"
    )


def test_the_service_may_put_findings_on_its_bus_only(full: dict[str, Any]) -> None:
    assert _statement(full, "PutFindingsOnBus")["Resource"] == "{FindingsEventBus.Arn}"
    assert full["FindingsEventBus"]["Properties"]["Name"] == "security-findings"


def test_the_example_rule_sends_high_findings_to_an_encrypted_topic(full: dict[str, Any]) -> None:
    rule = full["HighSeverityFindingsRule"]["Properties"]
    assert rule["EventBusName"] == "security-findings"
    assert rule["EventPattern"] == {
        "source": ["cloudtrail-detector"],
        "detail-type": ["CloudTrail Detector Finding"],
        "detail": {"severity_label": ["high"]},
    }
    (target,) = rule["Targets"]
    assert target["Arn"] == "{FindingsAlertTopic}"
    assert full["FindingsAlertTopic"]["Properties"]["KmsMasterKeyId"] == "{Key.Arn}"
    policy = full["FindingsAlertTopicPolicy"]["Properties"]["PolicyDocument"]
    from_rule = Request(
        action="sns:Publish",
        resource="{FindingsAlertTopic}",
        principal_service="events.amazonaws.com",
        context={
            **_tls(True),
            "aws:SourceArn": "{HighSeverityFindingsRule.Arn}",
            "aws:PrincipalIsAWSService": "true",
        },
    )
    assert decide(policy, from_rule) == "allow"
    assert (
        decide(
            policy,
            Request(
                **{
                    **from_rule.__dict__,
                    "context": {**from_rule.context, "aws:SourceArn": RULE_ARN},
                }
            ),
        )
        == "no-decision"
    )
    assert (
        decide(
            policy,
            Request(**{**from_rule.__dict__, "context": {**from_rule.context, **_tls(False)}}),
        )
        == "deny"
    )


def test_replay_is_scoped_to_the_trail_prefix(full: dict[str, Any]) -> None:
    statements = {s["Sid"]: s for _, s in _iam_statements(full)}
    bucket, prefix = ALL_OPTIONS["TrailBucketName"], ALL_OPTIONS["TrailPrefix"]
    listing = statements["ListTrailPrefix"]
    assert listing["Resource"] == f"arn:aws:s3:::{bucket}"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": f"{prefix}*"}}
    assert statements["ReadTrailObjects"]["Resource"] == f"arn:aws:s3:::{bucket}/{prefix}*"
    decrypt = statements["DecryptTrailObjectsViaS3"]
    assert decrypt["Resource"] == ALL_OPTIONS["TrailKmsKeyArn"]
    assert decrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}
    }
    state = statements["SharedStateStore"]["Resource"]
    assert state == [ALL_OPTIONS["StateTableArn"], ALL_OPTIONS["StateTableArn"] + "/index/*"]


@pytest.mark.parametrize(
    ("identity", "expected_principal", "expected_actions"),
    [
        (
            "eks-irsa",
            {"Federated": f"arn:aws:iam::111122223333:oidc-provider/{ISSUER}"},
            ["sts:AssumeRoleWithWebIdentity"],
        ),
        (
            "eks-pod-identity",
            {"Service": "pods.eks.amazonaws.com"},
            ["sts:AssumeRole", "sts:TagSession"],
        ),
        ("ecs-task", {"Service": "ecs-tasks.amazonaws.com"}, ["sts:AssumeRole"]),
    ],
)
def test_trust_policy_follows_the_workload_identity(
    template: dict[str, Any],
    identity: str,
    expected_principal: dict[str, str],
    expected_actions: list[str],
) -> None:
    resources = resolve_resources(template, {**ONLY_REQUIRED, "WorkloadIdentity": identity})
    trust = resources["ServiceRole"]["Properties"]["AssumeRolePolicyDocument"]
    if isinstance(trust, str):
        trust = json.loads(trust)  # the IRSA trust is a JSON string (its keys hold the issuer)
    (statement,) = trust["Statement"]
    assert statement["Principal"] == expected_principal
    assert as_list(statement["Action"]) == expected_actions
    conditions = statement["Condition"]["StringEquals"]
    if identity == "eks-irsa":
        assert conditions == {
            f"{ISSUER}:sub": "system:serviceaccount:detector:detector",
            f"{ISSUER}:aud": "sts.amazonaws.com",
        }
    else:  # confused-deputy protection for service principals
        assert conditions["aws:SourceAccount"] == PSEUDO_PARAMETERS["AWS::AccountId"]


def test_irsa_without_an_issuer_is_rejected_by_a_template_rule(template: dict[str, Any]) -> None:
    (assertion,) = template["Rules"]["IrsaNeedsIssuer"]["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "EksOidcIssuer"}, ""]}]}


def test_organization_may_put_events_on_the_bus(full: dict[str, Any]) -> None:
    statement = full["OrganizationEventBusPolicy"]["Properties"]["Statement"]
    assert statement["Action"] == "events:PutEvents"
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}
    assert statement["Resource"] == "arn:aws:events:eu-west-1:111122223333:event-bus/default"


# --- the state bucket ------------------------------------------------------------------------------


def test_state_bucket_is_versioned_private_and_encrypted_with_the_key(
    template: dict[str, Any], full: dict[str, Any]
) -> None:
    kept = template["Resources"]["StateBucket"]
    assert kept["DeletionPolicy"] == kept["UpdateReplacePolicy"] == "Retain"
    properties = full["StateBucket"]["Properties"]
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": "{Key.Arn}",
    }
    assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(properties["PublicAccessBlockConfiguration"]) == 4
    assert properties["OwnershipControls"] == {
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]
    }


def test_replaced_state_generations_expire(template: dict[str, Any], full: dict[str, Any]) -> None:
    rules = {
        r["Id"]: r for r in full["StateBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    }
    default = template["Parameters"]["StateRetentionDays"]["Default"]
    expire = rules["ExpireReplacedGenerations"]
    assert expire["Status"] == "Enabled"
    assert expire["NoncurrentVersionExpiration"] == {"NoncurrentDays": str(default)}
    assert rules["RemoveExpiredDeleteMarkers"]["ExpiredObjectDeleteMarker"] is True


def _to_state(action: str, resource: str, *, secure: bool = True, **context: str) -> Request:
    return Request(
        action=action,
        resource=resource,
        principal_arn=SERVICE_ROLE_ARN,
        context={**_tls(secure), **context},
    )


def test_state_bucket_denies_requests_without_tls_or_the_stacks_key(
    full: dict[str, Any],
) -> None:
    policy = full["StateBucketPolicy"]["Properties"]["PolicyDocument"]
    assert full["StateBucketPolicy"]["Properties"]["Bucket"] == "{StateBucket}"
    objects = "{StateBucket.Arn}/detector/MANIFEST.json"
    for action, resource in (("s3:GetObject", objects), ("s3:ListBucket", "{StateBucket.Arn}")):
        assert decide(policy, _to_state(action, resource, secure=False)) == "deny", action
        assert decide(policy, _to_state(action, resource)) == "no-decision", action
    kms = "s3:x-amz-server-side-encryption"
    key = "s3:x-amz-server-side-encryption-aws-kms-key-id"
    assert decide(policy, _to_state("s3:PutObject", objects)) == "deny"  # no SSE-KMS named
    assert decide(
        policy, _to_state("s3:PutObject", objects, **{kms: "aws:kms", key: "{Key.Arn}"})
    ) == ("no-decision")
    assert decide(policy, _to_state("s3:PutObject", objects, **{kms: "AES256"})) == "deny"
    other_key = "arn:aws:kms:eu-west-1:111122223333:key/other"
    assert decide(
        policy, _to_state("s3:PutObject", objects, **{kms: "aws:kms", key: other_key})
    ) == ("deny")


def test_the_service_may_use_its_state_bucket_only(full: dict[str, Any]) -> None:
    assert _statement(full, "ListStateBucket")["Resource"] == "{StateBucket.Arn}"
    assert _statement(full, "ReadWriteStateObjects")["Resource"] == "{StateBucket.Arn}/*"


def test_outputs_give_what_the_overlays_need(template: dict[str, Any]) -> None:
    assert {
        "InputQueueUrl",
        "InputQueueArn",
        "DeadLetterQueueUrl",
        "DeadLetterQueueArn",
        "EventsDeadLetterQueueUrl",
        "EventsDeadLetterQueueArn",
        "FindingsQueueUrl",
        "FindingsQueueArn",
        "KeyArn",
        "RuleArn",
        "ServiceRoleArn",
        "StateBucketName",
        "StateLocation",
    } <= set(template["Outputs"])


# --- the member-account forwarder -----------------------------------------------------------------


def test_member_forwarder_puts_events_on_the_central_bus_only() -> None:
    central = "arn:aws:events:eu-west-1:111122223333:event-bus/default"
    resources = resolve_resources(load_template(MEMBER_TEMPLATE), {"CentralEventBusArn": central})
    rule = resources["ForwardRule"]["Properties"]
    assert rule["State"] == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    detector_rule = resolve_resources(load_template(DETECTOR_TEMPLATE), ONLY_REQUIRED)
    assert (
        rule["EventPattern"]
        == detector_rule["CloudTrailManagementEventsRule"]["Properties"]["EventPattern"]
    )
    (target,) = rule["Targets"]
    assert target["Arn"] == central
    assert target["RoleArn"] == "{ForwardRole.Arn}"
    assert target["DeadLetterConfig"] == {"Arn": "{ForwardDeadLetterQueue.Arn}"}
    (put,) = [s for _, s in _iam_statements(resources)]
    assert (put["Action"], put["Resource"]) == ("events:PutEvents", central)
    policy = _queue_policies(resources)["ForwardDeadLetterQueue"]
    rule_request = Request(
        action="sqs:SendMessage",
        resource="{ForwardDeadLetterQueue.Arn}",
        principal_service="events.amazonaws.com",
        context={**_tls(True), "aws:SourceArn": "{ForwardRule.Arn}"},
    )
    assert decide(policy, rule_request) == "allow"
    assert decide(policy, Request(**{**rule_request.__dict__, "context": _tls(False)})) == "deny"


# --- scale-out by principal ---------------------------------------------------------------------


def test_the_stream_is_encrypted_with_the_stack_key(full: dict[str, Any]) -> None:
    properties = full["EventStream"]["Properties"]
    assert properties["StreamEncryption"] == {"EncryptionType": "KMS", "KeyId": "{Key.Arn}"}
    assert properties["ShardCount"] == "4"


def test_router_and_consumers_use_the_key_through_their_service_only(full: dict[str, Any]) -> None:
    for sid, service in (
        ("DecryptInputQueue", "sqs"),
        ("EncryptIntoStream", "kinesis"),
        ("DecryptStream", "kinesis"),
    ):
        statement = _statement(full, sid)
        assert statement["Resource"] == "{Key.Arn}"
        assert statement["Condition"] == {
            "StringEquals": {"kms:ViaService": f"{service}.eu-west-1.amazonaws.com"}
        }
    for sid in ("PutOnStream", "ReadStreamShards"):
        assert _statement(full, sid)["Resource"] == "{EventStream.Arn}"


def test_without_a_shard_count_there_is_no_stream_and_no_router(minimal: dict[str, Any]) -> None:
    assert not {"EventStream", "RouterRole", "RouterPolicy", "StreamConsumerPolicy"} & set(minimal)
