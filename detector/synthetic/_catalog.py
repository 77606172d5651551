"""Which API calls each kind of actor makes, with realistic ``requestParameters``.

A :class:`Call` names one API (event source, event name, read-only or not) and how to fill its
request from the :class:`Resources` it touches. The tables here are the vocabulary of the
organisation: what people read and change, what Terraform plans and applies, what the AWS
Config recorder sweeps, and what an attacker enumerates.

Imports: the standard library and this package's :mod:`._identity`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Final

from detector.synthetic._identity import Record

RequestBuilder = Callable[["Resources", Random], Record | None]


@dataclass(frozen=True, slots=True)
class Resources:
    """The named resources of one application (or of an account without one) in one region."""

    account: str
    region: str
    name: str
    key_id: str
    instance_id: str

    @property
    def key_arn(self) -> str:
        return f"arn:aws:kms:{self.region}:{self.account}:key/{self.key_id}"

    @property
    def bucket(self) -> str:
        return f"{self.name}-{self.account}-{self.region}"

    @property
    def queue_name(self) -> str:
        return f"{self.name}-jobs"

    @property
    def queue_url(self) -> str:
        return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{self.queue_name}"

    @property
    def queue_arn(self) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{self.queue_name}"

    @property
    def table(self) -> str:
        return f"{self.name}-state"

    @property
    def table_arn(self) -> str:
        return f"arn:aws:dynamodb:{self.region}:{self.account}:table/{self.table}"

    @property
    def secret_arn(self) -> str:
        return (
            f"arn:aws:secretsmanager:{self.region}:{self.account}:secret:"
            f"{self.name}/db-{self.key_id[:6]}"
        )

    @property
    def role_name(self) -> str:
        return f"{self.name}-role"

    @property
    def log_group(self) -> str:
        return f"/app/{self.name}"

    @property
    def cluster(self) -> str:
        return f"{self.name}-cluster"

    def s3_host(self) -> str:
        return f"{self.bucket}.s3.{self.region}.amazonaws.com"


@dataclass(frozen=True, slots=True)
class Call:
    """One API as an actor calls it."""

    event_source: str
    event_name: str
    read_only: bool
    request: RequestBuilder

    @property
    def service(self) -> str:
        return self.event_source.split(".", 1)[0]


def _none(_r: Resources, _g: Random) -> Record | None:
    return None


def make_call(
    source: str, name: str, build: RequestBuilder = _none, *, read_only: bool = True
) -> Call:
    host = source if "." in source else f"{source}.amazonaws.com"
    return Call(host, name, read_only, build)


def _bucket(extra: str) -> RequestBuilder:
    def build(r: Resources, _g: Random) -> Record:
        return {"bucketName": r.bucket, "Host": r.s3_host(), extra: ""}

    return build


def _instances(r: Resources, _g: Random) -> Record:
    return {"instancesSet": {"items": [{"instanceId": r.instance_id}]}}


def _filters(set_name: str) -> RequestBuilder:
    def build(_r: Resources, _g: Random) -> Record:
        return {set_name: {}, "filterSet": {}}

    return build


def _key(r: Resources, _g: Random) -> Record:
    return {"keyId": r.key_arn}


def _queue(r: Resources, _g: Random) -> Record:
    return {"queueUrl": r.queue_url, "attributeNames": ["All"]}


def _table(r: Resources, _g: Random) -> Record:
    return {"tableName": r.table}


def _role(r: Resources, _g: Random) -> Record:
    return {"roleName": r.role_name}


def _function(r: Resources, _g: Random) -> Record:
    return {"functionName": r.name}


def _secret(r: Resources, _g: Random) -> Record:
    return {"secretId": r.secret_arn}


def _log_group(r: Resources, _g: Random) -> Record:
    return {"logGroupName": r.log_group}


def _cluster_service(r: Resources, _g: Random) -> Record:
    return {"cluster": r.cluster, "services": [r.name]}


def _stack(r: Resources, _g: Random) -> Record:
    return {"stackName": f"{r.name}-stack"}


def _parameter(r: Resources, _g: Random) -> Record:
    return {"name": f"/{r.name}/config", "withDecryption": False}


def _log_events(r: Resources, g: Random) -> Record:
    return {"logGroupName": r.log_group, "limit": g.choice((50, 100, 500)), "interleaved": True}


def _metric_data(r: Resources, _g: Random) -> Record:
    return {
        "metricDataQueries": [
            {"id": "m1", "metricStat": {"metric": {"namespace": "AWS/SQS"}, "stat": "Sum"}}
        ],
        "scanBy": "TimestampAscending",
    }


# What people (and the Config recorder) read, by service.
READS: Final[dict[str, tuple[Call, ...]]] = {
    "ec2": (
        make_call("ec2", "DescribeInstances", _filters("instancesSet")),
        make_call("ec2", "DescribeSecurityGroups", _filters("securityGroupSet")),
        make_call("ec2", "DescribeVpcs", _filters("vpcSet")),
        make_call("ec2", "DescribeSubnets", _filters("subnetSet")),
        make_call("ec2", "DescribeVolumes", _filters("volumeSet")),
        make_call("ec2", "DescribeInstanceStatus", _instances),
    ),
    "s3": (
        make_call("s3", "ListBuckets", lambda r, g: {"Host": f"s3.{r.region}.amazonaws.com"}),
        make_call("s3", "GetBucketLocation", _bucket("location")),
        make_call("s3", "GetBucketPolicy", _bucket("policy")),
        make_call("s3", "GetBucketVersioning", _bucket("versioning")),
        make_call("s3", "GetBucketEncryption", _bucket("encryption")),
        make_call("s3", "GetBucketPublicAccessBlock", _bucket("publicAccessBlock")),
    ),
    "lambda": (
        make_call("lambda", "ListFunctions20150331"),
        make_call("lambda", "GetFunction20150331v2", _function),
        make_call("lambda", "GetFunctionConfiguration20150331v2", _function),
    ),
    "logs": (
        make_call("logs", "DescribeLogGroups", lambda r, g: {"limit": 50}),
        make_call("logs", "DescribeLogStreams", _log_group),
        make_call("logs", "FilterLogEvents", _log_events),
    ),
    "monitoring": (
        make_call("monitoring", "DescribeAlarms", lambda r, g: {"maxRecords": 100}),
        make_call("monitoring", "GetMetricData", _metric_data),
        make_call("monitoring", "ListMetrics"),
    ),
    "ecs": (
        make_call("ecs", "ListClusters"),
        make_call("ecs", "DescribeServices", _cluster_service),
        make_call("ecs", "ListTasks", lambda r, g: {"cluster": r.cluster}),
    ),
    "iam": (
        make_call("iam", "ListRoles"),
        make_call("iam", "GetRole", _role),
        make_call("iam", "ListAttachedRolePolicies", _role),
        make_call("iam", "GetAccountSummary"),
    ),
    "kms": (
        make_call("kms", "ListKeys", lambda r, g: {"limit": 1000}),
        make_call("kms", "DescribeKey", _key),
        make_call("kms", "ListAliases"),
    ),
    "sqs": (
        make_call("sqs", "ListQueues"),
        make_call("sqs", "GetQueueAttributes", _queue),
    ),
    "dynamodb": (
        make_call("dynamodb", "ListTables"),
        make_call("dynamodb", "DescribeTable", _table),
    ),
    "rds": (
        make_call("rds", "DescribeDBInstances"),
        make_call("rds", "DescribeDBClusters"),
    ),
    "cloudformation": (
        make_call("cloudformation", "DescribeStacks", _stack),
        make_call("cloudformation", "DescribeStackEvents", _stack),
    ),
    "secretsmanager": (
        make_call("secretsmanager", "ListSecrets"),
        make_call("secretsmanager", "DescribeSecret", _secret),
    ),
    "ssm": (
        make_call("ssm", "DescribeParameters", lambda r, g: {"maxResults": 50}),
        make_call("ssm", "GetParameter", _parameter),
    ),
}

# What people with write access change, by service (reads dominate; see ``_people``).
WRITES: Final[dict[str, tuple[Call, ...]]] = {
    "ec2": (
        make_call("ec2", "StopInstances", _instances, read_only=False),
        make_call("ec2", "StartInstances", _instances, read_only=False),
        make_call(
            "ec2",
            "CreateTags",
            lambda r, g: {
                "resourcesSet": {"items": [{"resourceId": r.instance_id}]},
                "tagSet": {"items": [{"key": "owner", "value": r.name}]},
            },
            read_only=False,
        ),
    ),
    "lambda": (
        make_call(
            "lambda",
            "UpdateFunctionConfiguration20150331v2",
            lambda r, g: {"functionName": r.name, "timeout": g.choice((15, 30, 60))},
            read_only=False,
        ),
    ),
    "logs": (
        make_call(
            "logs",
            "PutRetentionPolicy",
            lambda r, g: {"logGroupName": r.log_group, "retentionInDays": 30},
            read_only=False,
        ),
    ),
    "ecs": (
        make_call(
            "ecs",
            "UpdateService",
            lambda r, g: {"cluster": r.cluster, "service": r.name, "forceNewDeployment": True},
            read_only=False,
        ),
    ),
    "ssm": (
        make_call(
            "ssm",
            "PutParameter",
            lambda r, g: {"name": f"/{r.name}/flags", "type": "String", "overwrite": True},
            read_only=False,
        ),
    ),
    "cloudformation": (
        make_call(
            "cloudformation",
            "CreateChangeSet",
            lambda r, g: {
                "stackName": f"{r.name}-stack",
                "changeSetName": f"cs-{g.randrange(10**6)}",
            },
            read_only=False,
        ),
    ),
    "s3": (
        make_call(
            "s3",
            "PutBucketTagging",
            lambda r, g: {"bucketName": r.bucket, "Host": r.s3_host(), "tagging": ""},
            read_only=False,
        ),
    ),
    "iam": (
        make_call(
            "iam",
            "TagRole",
            lambda r, g: {"roleName": r.role_name, "tags": [{"key": "team", "value": r.name}]},
            read_only=False,
        ),
    ),
}

PEOPLE_SERVICES: Final = tuple(READS)

# What ``terraform plan`` refreshes for one application, in order.
TERRAFORM_PLAN: Final = (
    make_call("sts", "GetCallerIdentity"),
    make_call("iam", "GetRole", _role),
    make_call("iam", "ListRolePolicies", _role),
    make_call("iam", "ListAttachedRolePolicies", _role),
    make_call("kms", "DescribeKey", _key),
    make_call("kms", "GetKeyPolicy", lambda r, g: {"keyId": r.key_arn, "policyName": "default"}),
    make_call("kms", "GetKeyRotationStatus", _key),
    make_call("kms", "ListResourceTags", _key),
    make_call("sqs", "GetQueueAttributes", _queue),
    make_call("sqs", "ListQueueTags", lambda r, g: {"queueUrl": r.queue_url}),
    make_call("s3", "GetBucketPolicy", _bucket("policy")),
    make_call("s3", "GetBucketVersioning", _bucket("versioning")),
    make_call("s3", "GetBucketEncryption", _bucket("encryption")),
    make_call("s3", "GetBucketAcl", _bucket("acl")),
    make_call("s3", "GetBucketTagging", _bucket("tagging")),
    make_call("s3", "GetBucketPublicAccessBlock", _bucket("publicAccessBlock")),
    make_call("dynamodb", "DescribeTable", _table),
    make_call("dynamodb", "DescribeContinuousBackups", _table),
    make_call("dynamodb", "DescribeTimeToLive", _table),
    make_call("secretsmanager", "DescribeSecret", _secret),
    make_call("secretsmanager", "GetResourcePolicy", _secret),
    make_call("logs", "DescribeLogGroups", lambda r, g: {"logGroupNamePrefix": r.log_group}),
    make_call("logs", "ListTagsLogGroup", _log_group),
    make_call("ec2", "DescribeVpcs", _filters("vpcSet")),
    make_call("ec2", "DescribeSubnets", _filters("subnetSet")),
    make_call("ec2", "DescribeSecurityGroups", _filters("securityGroupSet")),
)

# What ``terraform apply`` changes, by compute kind.
TERRAFORM_APPLY: Final[dict[str, tuple[Call, ...]]] = {
    "ec2": (
        make_call(
            "ec2",
            "CreateLaunchTemplateVersion",
            lambda r, g: {"CreateLaunchTemplateVersionRequest": {"LaunchTemplateName": r.name}},
            read_only=False,
        ),
        make_call(
            "autoscaling",
            "StartInstanceRefresh",
            lambda r, g: {"autoScalingGroupName": f"{r.name}-asg"},
            read_only=False,
        ),
    ),
    "ecs": (
        make_call(
            "ecs",
            "RegisterTaskDefinition",
            lambda r, g: {"family": r.name, "networkMode": "awsvpc", "cpu": "512"},
            read_only=False,
        ),
        make_call(
            "ecs",
            "UpdateService",
            lambda r, g: {"cluster": r.cluster, "service": r.name, "taskDefinition": r.name},
            read_only=False,
        ),
    ),
    "lambda": (
        make_call(
            "lambda",
            "UpdateFunctionCode20150331v2",
            lambda r, g: {"functionName": r.name, "publish": True, "dryRun": False},
            read_only=False,
        ),
        make_call("lambda", "PublishVersion20150331", _function, read_only=False),
    ),
}

# Applies that touch the shared resources; the queue keeps its KMS key (compare the attacks).
TERRAFORM_SHARED_APPLY: Final = (
    make_call(
        "sqs",
        "SetQueueAttributes",
        lambda r, g: {
            "queueUrl": r.queue_url,
            "attributes": {"VisibilityTimeout": "60", "KmsMasterKeyId": r.key_arn},
        },
        read_only=False,
    ),
    make_call(
        "iam",
        "PutRolePolicy",
        lambda r, g: {"roleName": r.role_name, "policyName": f"{r.name}-inline"},
        read_only=False,
    ),
)

# What the AWS Config recorder describes in a sweep.
CONFIG_SWEEP: Final = tuple(
    call
    for service in ("ec2", "s3", "lambda", "kms", "sqs", "dynamodb", "rds", "iam", "logs")
    for call in READS[service]
    if call.event_name not in {"FilterLogEvents", "ListBuckets"}
)

# What an attacker enumerates when testing a key: many services, often in every region.
RECON: Final = (
    make_call("sts", "GetCallerIdentity"),
    make_call("iam", "GetAccountAuthorizationDetails"),
    make_call("iam", "ListUsers"),
    make_call("iam", "ListRoles"),
    make_call("iam", "ListPolicies", lambda r, g: {"scope": "Local", "onlyAttached": False}),
    make_call("iam", "ListAccessKeys"),
    make_call("s3", "ListBuckets", lambda r, g: {"Host": f"s3.{r.region}.amazonaws.com"}),
    make_call("ec2", "DescribeInstances", _filters("instancesSet")),
    make_call(
        "ec2", "DescribeSnapshots", lambda r, g: {"ownersSet": {"items": [{"owner": "self"}]}}
    ),
    make_call("ec2", "DescribeSecurityGroups", _filters("securityGroupSet")),
    make_call("ec2", "DescribeKeyPairs", _filters("keySet")),
    make_call("lambda", "ListFunctions20150331"),
    make_call("rds", "DescribeDBInstances"),
    make_call("rds", "DescribeDBSnapshots"),
    make_call("secretsmanager", "ListSecrets"),
    make_call("ssm", "DescribeParameters", lambda r, g: {"maxResults": 50}),
    make_call("kms", "ListKeys", lambda r, g: {"limit": 1000}),
    make_call("dynamodb", "ListTables"),
    make_call("sqs", "ListQueues"),
    make_call("sns", "ListTopics"),
    make_call("cloudtrail", "DescribeTrails", lambda r, g: {"includeShadowTrails": True}),
    make_call("guardduty", "ListDetectors"),
    make_call("organizations", "DescribeOrganization"),
    make_call("organizations", "ListAccounts"),
    make_call("ecr", "DescribeRepositories"),
    make_call("ecs", "ListClusters"),
    make_call("eks", "ListClusters"),
    make_call("logs", "DescribeLogGroups", lambda r, g: {"limit": 50}),
    make_call("cloudformation", "ListStacks"),
    make_call("route53", "ListHostedZones"),
    make_call("ses", "GetSendQuota"),
    make_call("ce", "GetCostAndUsage", lambda r, g: {"granularity": "MONTHLY"}),
)
