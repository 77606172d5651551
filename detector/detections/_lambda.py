"""Lambda code, layers or configuration changed by a principal that does not deploy Lambda.

Deploy roles and pipelines change functions every day; what matters is who. The principal
profile (:meth:`DetectionContext.known`, kind ``event_name``) says which principals have
created, updated or published Lambda functions before: a change by a profiled principal with
no such history is a change by someone who does not deploy (a person's session, an
application role, a stolen key overwriting a function or slipping in a layer). Principals the
profile does not know yet, or has known for less than ``learning_period``, are left to the
model (everything about them is new), and without a profile nothing fires.

Imports: polars, this package's vocabulary and examples.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import polars as pl

from detector.detections._detection import (
    KNOWN_ITEMS_SCHEMA,
    PRINCIPAL_HISTORY_SCHEMA,
    Detection,
    DetectionConfig,
    DetectionContext,
)
from detector.detections._examples import ACCOUNT, api_call, iam_user, role_session
from detector.detections._expressions import evidence, only_with_rows, param, succeeded

__all__ = ["LAMBDA_CHANGED_BY_NON_DEPLOYER"]

_LAMBDA: Final = "lambda.amazonaws.com"
# Event names carry API versions (UpdateFunctionCode20150331v2): matched by prefix.
_CHANGES: Final = ("UpdateFunctionCode", "UpdateFunctionConfiguration")
_DEPLOYS: Final = (*_CHANGES, "CreateFunction", "PublishVersion", "PublishLayerVersion")
_CHANGE: Final = pl.any_horizontal(pl.col("event_name").str.starts_with(n) for n in _CHANGES)
# What decides the code that runs and with which rights: code, layers, role, handler, runtime,
# environment. Memory, timeout and description changes are tuning, not code.
_WHAT_RUNS: Final = pl.col("event_name").str.starts_with("UpdateFunctionCode") | pl.any_horizontal(
    param(f"$.{key}").is_not_null()
    for key in ("layers", "role", "handler", "runtime", "environment")
)


def _changed_by_non_deployer(
    events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
) -> pl.LazyFrame:
    calls = context.known("event_name")
    if calls is None:
        return events.filter(pl.lit(False)).with_columns(evidence())
    names = pl.col("value").str.strip_prefix("lambda:")
    deploy = pl.col("value").str.starts_with("lambda:") & pl.any_horizontal(
        names.str.starts_with(n) for n in _DEPLOYS
    )
    mature = context.mature(config.learning_period)
    if mature is None:
        return events.filter(pl.lit(False)).with_columns(evidence())
    changes = events.filter(succeeded() & _CHANGE & _WHAT_RUNS)
    # Only the principals of this batch's changes: the profile may hold millions of items.
    callers = changes.select("principal_key").unique()
    profiled = (
        calls.join(callers, on="principal_key", how="semi")
        .group_by("principal_key")
        .agg(deployer=deploy.any())
    )
    return (
        changes.join(profiled, on="principal_key", how="inner")
        .join(mature, on="principal_key", how="inner")
        .filter(~pl.col("deployer") & (pl.col("event_time") >= pl.col("known_since")))
        .with_columns(
            evidence(
                function=param("$.functionName"),
                call=pl.col("event_name"),
                layers=param("$.layers"),
                role=param("$.role"),
            )
        )
        .drop("deployer", "known_since")
    )


_ALICE: Final = f"arn:aws:iam::{ACCOUNT}:user/alice"
_DEPLOYER: Final = f"arn:aws:iam::{ACCOUNT}:role/gha-deploy"
_EXAMPLE_HISTORY: Final = pl.DataFrame(
    [
        (key, datetime(2024, 4, 1, tzinfo=UTC), 1000, 0, None)
        for key in (_ALICE, _DEPLOYER, f"arn:aws:iam::{ACCOUNT}:user/bob")
    ],
    schema=PRINCIPAL_HISTORY_SCHEMA,
    orient="row",
)
_EXAMPLE_PROFILE: Final = pl.DataFrame(
    [
        (_ALICE, "event_name", "s3:GetObject"),
        (_ALICE, "event_name", "lambda:GetFunction20150331v2"),
        (f"arn:aws:iam::{ACCOUNT}:user/bob", "event_name", "s3:GetObject"),
        (_DEPLOYER, "event_name", "lambda:UpdateFunctionCode20150331v2"),
        (_DEPLOYER, "event_name", "lambda:UpdateFunctionConfiguration20150331v2"),
    ],
    schema=KNOWN_ITEMS_SCHEMA,
    orient="row",
)


def _update(event_name: str, identity: dict[str, Any], **params: Any) -> dict[str, Any]:
    return api_call(
        _LAMBDA, event_name, {"functionName": "orders-api", **params}, identity=identity
    )


LAMBDA_CHANGED_BY_NON_DEPLOYER = Detection(
    id="lambda_changed_by_non_deployer",
    title="Lambda function changed by a principal that does not deploy Lambda",
    description="A function's code, layers or configuration (UpdateFunctionCode, "
    "UpdateFunctionConfiguration) was changed by a principal whose profile shows no Lambda "
    "deployments (no CreateFunction, Update*, Publish* before): code put into a running "
    "function by someone other than its pipeline. Only layers, role, handler, runtime and "
    "environment count among configuration changes, and principals the profile has known for "
    "less than learning_period (2 days) are still learning.",
    severity=5.0,
    mitre=("T1525", "T1098"),
    selects=(pl.col("event_source") == _LAMBDA) & _CHANGE,
    matches=only_with_rows(_changed_by_non_deployer),
    positives=(
        (_update("UpdateFunctionCode20150331v2", iam_user("alice"), zipFile="<redacted>"),),
        (
            _update(
                "UpdateFunctionConfiguration20150331v2",
                iam_user("alice"),
                layers=[f"arn:aws:lambda:eu-west-1:{ACCOUNT}:layer:ext:1"],
            ),
        ),
    ),
    negatives=(
        (
            _update(
                "UpdateFunctionCode20150331v2", role_session("gha-deploy", "run-1"), zipFile="x"
            ),
        ),
        (_update("GetFunction20150331v2", iam_user("alice")),),
        # Tuning is not code: memory and timeout.
        (_update("UpdateFunctionConfiguration20150331v2", iam_user("alice"), memorySize=1024),),
        # Not in the profile yet: a new principal is the model's to judge.
        (_update("UpdateFunctionCode20150331v2", iam_user("mallory"), zipFile="x"),),
    ),
    anchors=(
        "Panther: AWS.Lambda.UpdateFunctionCode (any update)",
        "Sigma: aws_new_lambda_layer_attached (any layer)",
        "Stratus: aws.persistence.lambda-overwrite-code, aws.persistence.lambda-layer-extension",
    ),
    example_context=DetectionContext(
        known_items=_EXAMPLE_PROFILE, principal_history=_EXAMPLE_HISTORY
    ),
)
