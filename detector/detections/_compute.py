"""EC2 instances launched the way crypto-miners launch them: many at once, of GPU or very large
types, or in a region the principal (or its whole account) has never used.

One detection for all three, since they are one attack seen from three sides: each matched
launch carries the reasons that apply in its evidence. "Many" is ``bulk_threshold`` instances
(default 10) requested in one call, or by one principal within ``bulk_window`` in the batch.
"New region" needs the principal profile (:meth:`DetectionContext.known`, kind ``region``):
a region is new to a principal with a profile that does not list it, and new to the account
when no profiled principal of that account lists it. Without a profile no region is new.
Refused launches count too (the Stratus technique is refused): the attempt is the signal.
Launches by service-linked roles (Auto Scaling, fleets) or by a service for a principal do not:
the group or fleet was set up by someone's own call.

Imports: polars, this package's vocabulary and examples.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

import polars as pl

from detector.detections._detection import Detection, DetectionConfig, DetectionContext
from detector.detections._examples import EXAMPLE_TIME, api_call, role_session
from detector.detections._expressions import (
    calls,
    evidence,
    only_with_rows,
    param,
    succeeded,
    where,
)

__all__ = ["EC2_INSTANCES_LAUNCHED_UNUSUALLY", "EC2_USER_DATA_CHANGED"]

_EC2: Final = "ec2.amazonaws.com"
# GPU, machine-learning, FPGA, video and memory-giant families, and any size of 16xlarge or
# more or bare metal: what mining pays on, and what a workload rarely starts unannounced.
_GPU_OR_GIANT: Final = r"^(p\d|g\d|gr\d|inf\d|trn\d|dl\d|f\d|vt\d|x\d|u\d*-|hpc\d)"
_SIZE: Final = pl.col("instance_type").str.extract(r"\.(\d+)xlarge$").cast(pl.Int64, strict=False)
_BIG: Final = (
    pl.col("instance_type").str.contains(_GPU_OR_GIANT)
    | pl.col("instance_type").str.ends_with(".metal")
    | (_SIZE >= 16)
).fill_null(False)
_DENIED: Final = pl.col("error_code").str.contains("AccessDenied|Unauthorized").fill_null(False)
_ACCOUNT_OF_KEY: Final = r"^arn:aws[a-z-]*:(?:iam|sts)::(\d{12}):"
# Auto Scaling, Spot fleets and the like launch through service-linked roles as designed;
# whoever set up the group or fleet did so with their own call.
_SERVICE_LINKED: Final = (
    pl.col("principal_key").str.contains(":role/aws-service-role/").fill_null(False)
    | pl.col("invoked_by").is_not_null()
)


def _new_regions(frame: pl.LazyFrame, context: DetectionContext) -> pl.LazyFrame:
    """``new_region_for_principal`` / ``new_region_for_account`` columns from the profile."""
    regions = context.known("region")
    if regions is None:
        return frame.with_columns(
            new_region_for_principal=pl.lit(False), new_region_for_account=pl.lit(False)
        )
    callers = frame.select("principal_key").unique()
    by_principal = (
        regions.join(callers, on="principal_key", how="semi")
        .group_by("principal_key")
        .agg(principal_regions=pl.col("value"))
    )
    by_account = (
        regions.with_columns(account=pl.col("principal_key").str.extract(_ACCOUNT_OF_KEY))
        .drop_nulls("account")
        .group_by("account")
        .agg(account_regions=pl.col("value").unique())
    )
    return (
        frame.with_columns(account=pl.col("principal_key").str.extract(_ACCOUNT_OF_KEY))
        .join(by_principal, on="principal_key", how="left")
        .join(by_account, on="account", how="left")
        .with_columns(
            new_region_for_principal=pl.col("principal_regions").is_not_null()
            & ~pl.col("region").is_in(pl.col("principal_regions")).fill_null(False),
            new_region_for_account=pl.col("account_regions").is_not_null()
            & ~pl.col("region").is_in(pl.col("account_regions")).fill_null(False),
        )
        .drop("account", "principal_regions", "account_regions")
    )


def _launched_unusually(
    events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
) -> pl.LazyFrame:
    requested = param("$.instancesSet.items[0].maxCount").cast(pl.Int64, strict=False).fill_null(1)
    frame = (
        events.filter((pl.col("error_code").is_null() | _DENIED) & ~_SERVICE_LINKED)
        .sort("event_time", "event_id")
        .with_columns(instance_type=param("$.instanceType"), requested=requested)
        .with_columns(
            requested_in_window=pl.col("requested")
            .rolling_sum_by("event_time", window_size=config.bulk_window)
            .over("principal_key")
        )
    )
    frame = _new_regions(frame, context)
    reasons = pl.concat_list(
        pl.when(pl.col("requested_in_window") >= config.bulk_threshold).then(pl.lit("many")),
        pl.when(_BIG).then(pl.lit("gpu_or_large_type")),
        pl.when(pl.col("new_region_for_principal")).then(pl.lit("region_new_to_principal")),
        pl.when(pl.col("new_region_for_account")).then(pl.lit("region_new_to_account")),
    ).list.drop_nulls()
    return (
        frame.with_columns(reasons=reasons)
        .filter(pl.col("reasons").list.len() > 0)
        .with_columns(
            evidence(
                reasons=pl.col("reasons"),
                instance_type=pl.col("instance_type"),
                requested=pl.col("requested"),
                requested_in_window=pl.col("requested_in_window"),
                region=pl.col("region"),
                error_code=pl.col("error_code"),
            )
        )
    )


def _launch(
    instance_type: str, count: int, *, minute: int = 0, error_code: str | None = None
) -> dict[str, Any]:
    at = datetime.fromisoformat(EXAMPLE_TIME) + timedelta(minutes=minute)
    return api_call(
        _EC2,
        "RunInstances",
        {
            "instanceType": instance_type,
            "instancesSet": {
                "items": [{"imageId": "ami-0a1b2c3d", "minCount": 1, "maxCount": count}]
            },
        },
        identity=role_session("gha-deploy", "run-1234"),
        event_time=at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        error_code=error_code,
    )


EC2_INSTANCES_LAUNCHED_UNUSUALLY = Detection(
    id="ec2_instances_launched_unusually",
    title="EC2 instances launched in bulk, of GPU/very large types, or in a new region",
    description="RunInstances (done or refused) asked for bulk_threshold instances or more "
    "(in one call or within bulk_window), for a GPU, ML, FPGA or very large type "
    "(16xlarge and up, metal), or in a region new to the principal or its account (from "
    "the profile): how stolen credentials are turned into crypto-mining.",
    severity=5.0,
    mitre=("T1496", "T1535"),
    selects=calls(_EC2, "RunInstances"),
    matches=only_with_rows(_launched_unusually),
    positives=(
        (_launch("p3.16xlarge", 1),),
        (_launch("c5.large", 20),),
        tuple(_launch("m5.large", 4, minute=m) for m in (0, 3, 6)),
        (_launch("p2.xlarge", 10, error_code="Client.UnauthorizedOperation"),),
    ),
    negatives=(
        (_launch("t3.micro", 1),),
        (_launch("m5.4xlarge", 3),),
        tuple(_launch("m5.large", 4, minute=m) for m in (0, 15, 30)),
        (_launch("g5.xlarge", 1, error_code="InsufficientInstanceCapacity"),),
    ),
    anchors=(
        "GuardDuty: CryptoCurrency:EC2/BitcoinTool (network side)",
        "Panther: AWS.EC2.Vulnerable.XZ.Image.Launched (other launches)",
        "Stratus: aws.execution.ec2-launch-unusual-instances",
    ),
)


def _modify_attribute(**params: Any) -> dict[str, Any]:
    return api_call(
        _EC2, "ModifyInstanceAttribute", {"instanceId": "i-0abc1234def567890", **params}
    )


_USER_DATA: Final = (param("$.attribute") == "userData").fill_null(False) | param(
    "$.userData"
).is_not_null()

EC2_USER_DATA_CHANGED = Detection(
    id="ec2_user_data_changed",
    title="EC2 instance user data changed",
    description="An instance's user data was replaced (ModifyInstanceAttribute userData): "
    "the script runs as root at the next start, a way to run code on the instance and to "
    "keep it there.",
    severity=5.0,
    mitre=("T1059.009", "T1098"),
    selects=calls(_EC2, "ModifyInstanceAttribute"),
    matches=where(succeeded() & _USER_DATA, instance=param("$.instanceId")),
    positives=(
        (_modify_attribute(userData="<sensitiveDataRemoved>"),),
        (_modify_attribute(attribute="userData", value="<sensitiveDataRemoved>"),),
    ),
    negatives=(
        (_modify_attribute(instanceType={"value": "m5.large"}),),
        (_modify_attribute(disableApiTermination={"value": True}),),
        (
            api_call(
                _EC2,
                "ModifyInstanceAttribute",
                {"instanceId": "i-0abc1234def567890", "userData": "<sensitiveDataRemoved>"},
                error_code="IncorrectInstanceState",
            ),
        ),
    ),
    anchors=(
        "Sigma: aws_ec2_startup_script_change",
        "Stratus: aws.execution.ec2-user-data",
    ),
)
