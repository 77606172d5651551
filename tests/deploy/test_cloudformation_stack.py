"""The templates deployed for real, into a moto server on loopback.

This proves the templates create (intrinsics resolve, references exist, no cycles) and wire the
resources together: encrypted queues, the redrive, the rule and its target, the state bucket,
the role and its policies, the outputs. moto does not model AWS::SQS::QueuePolicy,
AWS::Events::EventBusPolicy or AWS::S3::BucketPolicy (it skips them with a UserWarning) and hands key policies back as a Python repr, so policies are
checked in test_cloudformation_static.py.

The service itself is not run against the stack: `detector run` does not exist yet.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from .validators import DETECTOR_TEMPLATE, MEMBER_TEMPLATE

pytestmark = pytest.mark.filterwarnings(
    # Raised in moto's server thread for the two resource types it does not implement; with
    # warnings as errors the request would fail. Both types are checked statically instead.
    # ("." stands for ":" below: colons separate the fields of a warning filter.)
    r"ignore:Tried to parse AWS..(SQS..QueuePolicy|Events..EventBusPolicy|SNS..TopicPolicy"
    r"|S3..BucketPolicy) but it's not "
    r"supported by moto's CloudFormation implementation:UserWarning"
)

REGION = "eu-west-1"
ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE0123456789"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def aws(endpoint: str) -> Any:
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    return lambda service: session.client(service, endpoint_url=endpoint)


def _create_stack(aws: Any, name: str, template: str, parameters: dict[str, str]) -> dict[str, str]:
    cloudformation = aws("cloudformation")
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=template,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    cloudformation.get_waiter("stack_create_complete").wait(
        StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    (stack,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return {output["OutputKey"]: output["OutputValue"] for output in stack["Outputs"]}


def _queue(aws: Any, url: str) -> dict[str, str]:
    attributes: dict[str, str] = aws("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["All"]
    )["Attributes"]
    return attributes


def _role_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def full_stack(aws: Any) -> dict[str, str]:
    return _create_stack(
        aws,
        "detector-full",
        DETECTOR_TEMPLATE.read_text(),
        {
            "EksOidcIssuer": ISSUER,
            "KubernetesNamespace": "cloudtrail-detector",
            "ConsumerVpcEndpointId": "vpce-0a1b2c3d4e5f67890",
            "KedaOperatorRoleArn": "arn:aws:iam::123456789012:role/keda-operator",
            "TrailBucketName": "org-cloudtrail-logs",
            "TrailKmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666",
            "StateTableArn": "arn:aws:dynamodb:eu-west-1:123456789012:table/detector-state",
            "OrganizationId": "o-abcdefghij",
            "SecurityHubFindings": "true",
            "FindingsEventBusName": "security-findings",
            "ScaleOut": "true",
            "KinesisShardCount": "2",
        },
    )


def test_outputs_are_all_there(full_stack: dict[str, str]) -> None:
    assert set(full_stack) == {
        "InputQueueUrl",
        "InputQueueArn",
        "DeadLetterQueueUrl",
        "DeadLetterQueueArn",
        "EventsDeadLetterQueueUrl",
        "EventsDeadLetterQueueArn",
        "FindingsQueueUrl",
        "FindingsQueueArn",
        "FindingsEventBusName",
        "FindingsEventBusArn",
        "FindingsAlertTopicArn",
        "KeyArn",
        "RuleArn",
        "ServiceRoleArn",
        "StateBucketName",
        "StateLocation",
        "EventStreamName",
        "RouterRoleArn",
    }


def test_the_stream_has_its_shards_and_the_router_its_role(
    aws: Any, full_stack: dict[str, str]
) -> None:
    summary = aws("kinesis").describe_stream_summary(StreamName=full_stack["EventStreamName"])
    assert summary["StreamDescriptionSummary"]["OpenShardCount"] == 2
    policies = aws("iam").list_role_policies(RoleName=_role_name(full_stack["RouterRoleArn"]))
    assert policies["PolicyNames"] == ["cloudtrail-detector-router"]


def test_queues_are_encrypted_with_the_stack_key(aws: Any, full_stack: dict[str, str]) -> None:
    for queue in ("InputQueue", "DeadLetterQueue", "EventsDeadLetterQueue", "FindingsQueue"):
        attributes = _queue(aws, full_stack[f"{queue}Url"])
        assert attributes["KmsMasterKeyId"] == full_stack["KeyArn"], queue
        assert attributes["QueueArn"] == full_stack[f"{queue}Arn"]
    key_id = full_stack["KeyArn"].rsplit("/", 1)[-1]
    assert aws("kms").get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True


def test_input_queue_redrives_to_the_dlq(aws: Any, full_stack: dict[str, str]) -> None:
    attributes = _queue(aws, full_stack["InputQueueUrl"])
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == full_stack["DeadLetterQueueArn"]
    assert int(redrive["maxReceiveCount"]) == 5
    assert attributes["VisibilityTimeout"] == "300"
    assert attributes["ReceiveMessageWaitTimeSeconds"] == "20"
    dlq = _queue(aws, full_stack["DeadLetterQueueUrl"])
    assert dlq["MessageRetentionPeriod"] == str(14 * 24 * 3600)


def test_rule_targets_the_input_queue(aws: Any, full_stack: dict[str, str]) -> None:
    events = aws("events")
    rule_name = full_stack["RuleArn"].rsplit("/", 1)[-1]
    rule = events.describe_rule(Name=rule_name)
    assert rule["State"] == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    assert json.loads(rule["EventPattern"])["detail-type"] == [
        "AWS API Call via CloudTrail",
        "AWS Console Sign In via CloudTrail",
        "AWS Service Event via CloudTrail",
    ]
    (target,) = events.list_targets_by_rule(Rule=rule_name)["Targets"]
    assert target["Arn"] == full_stack["InputQueueArn"]
    assert target["DeadLetterConfig"]["Arn"] == full_stack["EventsDeadLetterQueueArn"]
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}


def test_role_trusts_the_service_account_and_holds_its_policies(
    aws: Any, full_stack: dict[str, str]
) -> None:
    iam = aws("iam")
    role = iam.get_role(RoleName=_role_name(full_stack["ServiceRoleArn"]))["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    (statement,) = trust["Statement"]
    assert statement["Principal"]["Federated"].endswith(f":oidc-provider/{ISSUER}")
    assert statement["Condition"]["StringEquals"][f"{ISSUER}:sub"] == (
        "system:serviceaccount:cloudtrail-detector:detector"
    )
    names = iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    assert sorted(names) == [
        "cloudtrail-detector-event-bus",
        "cloudtrail-detector-queues",
        "cloudtrail-detector-replay",
        "cloudtrail-detector-security-hub",
        "cloudtrail-detector-state",
        "cloudtrail-detector-state-bucket",
        "cloudtrail-detector-stream-consumer",
        "cloudtrail-detector-trail-key",
    ]
    queues = iam.get_role_policy(RoleName=role["RoleName"], PolicyName="cloudtrail-detector-queues")
    document = queues["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    resources = {s["Sid"]: s["Resource"] for s in document["Statement"]}
    assert resources == {
        "ConsumeInputQueue": full_stack["InputQueueArn"],
        "PublishFindings": full_stack["FindingsQueueArn"],
        "UseQueueKey": full_stack["KeyArn"],
    }


def test_findings_bus_rule_sends_to_the_encrypted_topic(
    aws: Any, full_stack: dict[str, str]
) -> None:
    events = aws("events")
    bus = full_stack["FindingsEventBusName"]
    assert events.describe_event_bus(Name=bus)["Arn"] == full_stack["FindingsEventBusArn"]
    (rule,) = events.list_rules(EventBusName=bus)["Rules"]
    (target,) = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]
    assert target["Arn"] == full_stack["FindingsAlertTopicArn"]
    attributes = aws("sns").get_topic_attributes(TopicArn=full_stack["FindingsAlertTopicArn"])
    assert attributes["Attributes"]["KmsMasterKeyId"] == full_stack["KeyArn"]


def test_the_state_bucket_is_encrypted_with_the_stack_key(
    aws: Any, full_stack: dict[str, str]
) -> None:
    # moto's CloudFormation applies a bucket's encryption and tags only: versioning, the public
    # access block and the lifecycle are checked in test_cloudformation_static.py.
    s3 = aws("s3")
    bucket = full_stack["StateBucketName"]
    assert full_stack["StateLocation"] == f"s3://{bucket}/detector"
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": full_stack["KeyArn"],
    }


def test_minimal_ecs_stack_has_only_the_core_grants(aws: Any) -> None:
    outputs = _create_stack(
        aws, "detector-ecs", DETECTOR_TEMPLATE.read_text(), {"WorkloadIdentity": "ecs-task"}
    )
    iam = aws("iam")
    role = iam.get_role(RoleName=_role_name(outputs["ServiceRoleArn"]))["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    names = iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    assert sorted(names) == ["cloudtrail-detector-queues", "cloudtrail-detector-state-bucket"]


def test_member_forwarder_targets_the_central_bus(aws: Any) -> None:
    central = f"arn:aws:events:{REGION}:111122223333:event-bus/default"
    outputs = _create_stack(
        aws, "detector-member", MEMBER_TEMPLATE.read_text(), {"CentralEventBusArn": central}
    )
    events = aws("events")
    rule_name = outputs["ForwardRuleArn"].rsplit("/", 1)[-1]
    assert events.describe_rule(Name=rule_name)["State"] == (
        "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    )
    (target,) = events.list_targets_by_rule(Rule=rule_name)["Targets"]
    assert target["Arn"] == central
    assert target["RoleArn"].startswith("arn:aws:iam::")
    dlq = _queue(aws, outputs["ForwardDeadLetterQueueUrl"])
    assert target["DeadLetterConfig"]["Arn"] == dlq["QueueArn"]
