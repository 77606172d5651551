"""Detection of EC2 instance credentials used from somewhere that is not the instance.

Credentials an instance gets from its metadata service are meant to be used by that instance.
Used from a public address the workload does not call from, they were most likely copied off
the instance (SSRF, a compromised process) and replayed elsewhere.

"Where the workload calls from" comes from the principal profile
(:attr:`DetectionContext.known_source_ips`): the addresses the role itself is known to call
from, and the account's egress, i.e. the addresses any workload role of the same account
calls from (NAT gateways are shared by every instance behind them). Stolen credentials used
from elsewhere, even from another AWS-hosted address with the workload's own user agent, are
on neither list. An address the batch itself shows in use by the account's instance roles
at least ``profile_lag`` earlier counts as known too: a stream's profile would have learnt it
by then, and a replay's large batches must not report a NAT gateway for hours. Without a
profile, any public address that is not a VPC endpoint fires until it is learnt: an instance
with a public IP and no VPC endpoints, or a NAT gateway, fires once when the state is new.
Calls of the SSM and EC2 agents (``ssmmessages``, ``ec2messages``, ssm
``UpdateInstanceInformation``) never fire: the agent runs on the instance, and for many
instances it is all the traffic there is. The decision depends on each event, the events of
the same batch at least ``profile_lag`` older and the profile, so streaming and replay agree.

Imports: polars, this package's vocabulary and examples.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from detector.detections._detection import Detection, DetectionConfig, DetectionContext
from detector.detections._examples import (
    api_call,
    instance_role_session,
    role_session,
)
from detector.detections._expressions import evidence, learned_in_batch, only_with_rows

__all__ = ["INSTANCE_CREDENTIALS_USED_OUTSIDE"]

_INSTANCE_ID: Final = r"^i-[0-9a-f]{8,17}$"
_PUBLIC: Final = ("public_ipv4", "public_ipv6")
_AGENT_SOURCES: Final = ("ssmmessages.amazonaws.com", "ec2messages.amazonaws.com")

_INSTANCE_CREDENTIALS = (pl.col("principal_type") == "AssumedRole") & (
    pl.col("ec2_role_delivery").is_not_null()
    | pl.col("session_name").str.contains(_INSTANCE_ID).fill_null(False)
)
_AGENT_CALL = pl.col("event_source").is_in(_AGENT_SOURCES) | (
    (pl.col("event_source") == "ssm.amazonaws.com")
    & (pl.col("event_name") == "UpdateInstanceInformation")
)
# What the event alone decides; it is the detection's selection, so the batch-wide pass
# keeps only these rows (instance roles make much of a trail, nearly all of it in-VPC).
_FROM_OUTSIDE = (
    _INSTANCE_CREDENTIALS
    & pl.col("source_ip_kind").is_in(_PUBLIC)
    & pl.col("vpc_endpoint_id").is_null()
    & pl.col("invoked_by").is_null()
    & ~_AGENT_CALL
)
_PAIR: Final = ("principal_key", "source_ip_address")


# A workload role's key (no "#person" part): role ARN -> its account.
_WORKLOAD_ROLE_ACCOUNT: Final = r"^arn:aws[a-z-]*:iam::(\d{12}):role/[^#]*$"
_EGRESS: Final = ("account", "source_ip_address")


def _used_outside(
    events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
) -> pl.LazyFrame:
    # What the batch itself showed long enough ago is known, as it would be in a stream.
    # The batch's own egress counts per account, as the profile's does below.
    outside = (
        events.with_columns(
            account=pl.coalesce(
                pl.col("principal_key").str.extract(_WORKLOAD_ROLE_ACCOUNT),
                pl.col("principal_key"),
            )
        )
        .filter(~learned_in_batch(["account", "source_ip_address"], config.profile_lag))
        .drop("account")
    )
    if context.known_source_ips is not None:
        known = context.known_source_ips.lazy().select(_PAIR)
        # The account's egress: addresses any workload role of the account is known to call
        # from (its NAT gateways' addresses are shared by every instance behind them, whatever
        # the role), so a role new to the profile behind a known NAT is quiet too.
        egress = (
            known.with_columns(account=pl.col("principal_key").str.extract(_WORKLOAD_ROLE_ACCOUNT))
            .drop_nulls("account")
            .select(_EGRESS)
            .unique()
        )
        outside = (
            outside.join(known, on=list(_PAIR), how="anti")
            .with_columns(account=pl.col("principal_key").str.extract(_WORKLOAD_ROLE_ACCOUNT))
            .join(egress, on=list(_EGRESS), how="anti")
            .drop("account")
        )
    return outside.with_columns(
        evidence(
            instance=pl.col("session_name"),
            role=pl.col("session_issuer_arn"),
            source_ip=pl.col("source_ip_address"),
            ec2_role_delivery=pl.col("ec2_role_delivery"),
            call=pl.col("event_name"),
        )
    )


_EC2: Final = "ec2.amazonaws.com"
_PRIVATE_IP: Final = "10.0.3.7"
_INSTANCE_PUBLIC_IP: Final = "198.51.100.77"

INSTANCE_CREDENTIALS_USED_OUTSIDE = Detection(
    id="instance_credentials_used_outside",
    title="EC2 instance credentials used from outside the instance",
    description="A role session delivered to an EC2 instance (ec2RoleDelivery set, or a "
    "session named like i-0123abcd) called AWS from a public address that is not the "
    "workload's: not in the profile's known addresses, not through a VPC endpoint, not a "
    "service acting for it, and not the instance's SSM/EC2 agent.",
    severity=8.0,
    mitre=("T1552.005", "T1078.004"),
    selects=_FROM_OUTSIDE,
    matches=only_with_rows(_used_outside),
    positives=(
        (
            api_call(
                _EC2, "DescribeInstances", {}, identity=instance_role_session(), read_only=True
            ),
        ),
        (
            api_call(
                "sts.amazonaws.com",
                "GetCallerIdentity",
                identity=role_session("web", "i-0123456789abcdef0"),
                source_ip="2001:db8:85a3::8a2e:370:7334",
                read_only=True,
            ),
        ),
        (
            api_call(
                "ssm.amazonaws.com",
                "GetParameter",
                {"name": "/orders/db-url", "withDecryption": True},
                identity=instance_role_session(),
                read_only=True,
            ),
        ),
    ),
    negatives=(
        (
            api_call(
                "s3.amazonaws.com",
                "PutObject",
                {"bucketName": "orders", "key": "o/1.json"},
                identity=instance_role_session(),
                source_ip=_PRIVATE_IP,
            ),
        ),
        (
            api_call(
                "kms.amazonaws.com",
                "Decrypt",
                {},
                identity=instance_role_session(),
                source_ip="s3.amazonaws.com",
                read_only=True,
            ),
        ),
        (
            api_call(
                "s3.amazonaws.com",
                "GetObject",
                {"bucketName": "orders", "key": "o/1.json"},
                identity=instance_role_session(),
                vpcEndpointId="vpce-0a1b2c3d4e5f",
                read_only=True,
            ),
        ),
        (
            api_call(
                "ssmmessages.amazonaws.com",
                "CreateControlChannel",
                {"channelType": "control"},
                identity=instance_role_session(),
                source_ip=_INSTANCE_PUBLIC_IP,
            ),
        ),
        (
            api_call(
                _EC2,
                "DescribeInstances",
                {},
                identity={**instance_role_session(), "invokedBy": "eks.amazonaws.com"},
                read_only=True,
            ),
        ),
        (api_call(_EC2, "DescribeInstances", {}, identity=role_session(), read_only=True),),
    ),
    anchors=(
        "GuardDuty: UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS "
        "(and .InsideAWS)",
        "Panther: AWS.CloudTrail.IMDSCredentialExfiltration",
        "Sigma: aws_cloudtrail_imds_malicious_usage",
        "Stratus: aws.credential-access.ec2-steal-instance-credentials",
    ),
)
