"""Detections of ordinary calls made in bulk: many secrets or SecureString parameters read, many
Security Hub findings suppressed or archived, by one principal within ``bulk_window``.

One read of a secret is what applications do all day; ``bulk_threshold`` (default 10)
distinct secrets in ``bulk_window`` (default 10 minutes) is someone emptying the store. A
filtered BatchGetSecretValue reads every secret its filter matches, which the event does not
list, so it counts as a page of its ``maxResults`` (20 when not given, AWS's default). Counted
within one batch, like the sign-in failures: a slower harvest is the model's.

Imports: polars, this package's vocabulary and examples.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

import polars as pl

from detector.detections._detection import Detection, DetectionConfig, DetectionContext, Matcher
from detector.detections._examples import EXAMPLE_TIME, api_call, role_session
from detector.detections._expressions import evidence, param, succeeded

__all__ = ["SECRETS_READ_IN_BULK", "SECURITY_HUB_FINDINGS_SUPPRESSED_IN_BULK"]

_SECRETS: Final = "secretsmanager.amazonaws.com"
_SSM: Final = "ssm.amazonaws.com"
_FILTER_PAGE: Final = 20  # BatchGetSecretValue's default maxResults


def _at(minute: float) -> str:
    at = datetime.fromisoformat(EXAMPLE_TIME) + timedelta(minutes=minute)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _bulk(weight: pl.Expr, item: pl.Expr) -> Matcher:
    """A matcher keeping the successful selected rows of principals whose ``weight`` summed
    within ``bulk_window`` reached ``bulk_threshold``, from the window before that onwards."""

    def matches(
        events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
    ) -> pl.LazyFrame:
        # A name read twice counts once: the first read of each (principal, item) weighs.
        first_read = pl.col("event_time") == pl.col("event_time").min().over(
            "principal_key", "item"
        )
        in_window = (
            pl.col("weight")
            .rolling_sum_by("event_time", window_size=config.bulk_window)
            .over("principal_key")
        )
        reached = (
            pl.col("event_time")
            .filter(pl.col("in_window") >= config.bulk_threshold)
            .min()
            .over("principal_key")
        )
        return (
            events.filter(succeeded())
            .sort("event_time", "event_id")
            .with_columns(item=item, raw_weight=weight)
            .with_columns(weight=pl.when(first_read).then(pl.col("raw_weight")).otherwise(0))
            .with_columns(in_window=in_window)
            .with_columns(reached=reached)
            .filter(pl.col("event_time") >= pl.col("reached") - config.bulk_window)
            .with_columns(
                evidence(
                    items=pl.col("item")
                    .unique(maintain_order=True)
                    .head(config.max_sample)
                    .over("principal_key", mapping_strategy="join"),
                    most_in_window=pl.col("in_window").max().over("principal_key"),
                    threshold=pl.lit(config.bulk_threshold),
                    window_seconds=pl.lit(int(config.bulk_window.total_seconds())),
                )
            )
            .drop("item", "raw_weight", "weight", "in_window", "reached")
        )

    return matches


_BATCH_IDS: Final = param("$.secretIdList").str.json_decode(pl.List(pl.String))
_SECRET_WEIGHT: Final = (
    pl.when(pl.col("event_name") == "BatchGetSecretValue")
    .then(
        pl.coalesce(
            _BATCH_IDS.list.len(),
            param("$.maxResults").cast(pl.UInt32, strict=False),
            pl.lit(_FILTER_PAGE),
        )
    )
    .otherwise(1)
    .cast(pl.UInt32)
)
_PARAMETER_NAMES: Final = param("$.names").str.json_decode(pl.List(pl.String))
_SECRET_ITEM: Final = pl.coalesce(
    param("$.secretId"),
    _BATCH_IDS.list.join(","),
    param("$.filters"),
    param("$.name"),
    _PARAMETER_NAMES.list.join(","),
    param("$.path"),
)
_DECRYPTED: Final = (param("$.withDecryption") == "true").fill_null(False)
_SELECTS: Final = (
    (pl.col("event_source") == _SECRETS)
    & pl.col("event_name").is_in(["GetSecretValue", "BatchGetSecretValue"])
) | (
    (pl.col("event_source") == _SSM)
    & pl.col("event_name").is_in(["GetParameter", "GetParameters", "GetParametersByPath"])
)


def _secrets_matcher(
    events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
) -> pl.LazyFrame:
    weight = (
        pl.when(pl.col("event_source") == _SSM)
        .then(
            pl.when(pl.col("event_name") == "GetParameters")
            .then(_PARAMETER_NAMES.list.len())
            .when(pl.col("event_name") == "GetParametersByPath")
            .then(pl.lit(_FILTER_PAGE))  # a path reads every parameter under it
            .otherwise(1)
        )
        .otherwise(_SECRET_WEIGHT)
        .cast(pl.UInt32)
    )
    reads = events.filter((pl.col("event_source") == _SECRETS) | _DECRYPTED)
    return _bulk(weight, _SECRET_ITEM)(reads, config, context)


def _get_secret(name: str, minute: float) -> dict[str, Any]:
    return api_call(
        _SECRETS,
        "GetSecretValue",
        {"secretId": name},
        identity=role_session("orders-app", "deploy-7"),
        event_time=_at(minute),
        read_only=True,
    )


def _get_parameter(name: str, minute: float, decrypt: bool = True) -> dict[str, Any]:
    return api_call(
        _SSM,
        "GetParameter",
        {"name": name, "withDecryption": decrypt},
        event_time=_at(minute),
        read_only=True,
    )


SECRETS_READ_IN_BULK = Detection(
    id="secrets_read_in_bulk",
    title="Many secrets or SecureString parameters read at once",
    description="One principal read bulk_threshold (default 10) or more distinct secrets "
    "(GetSecretValue, BatchGetSecretValue) or decrypted SSM parameters (GetParameter(s) "
    "WithDecryption, GetParametersByPath) within bulk_window (default 10 minutes): the "
    "store being emptied rather than an application reading its own few secrets.",
    severity=5.0,
    mitre=("T1555.006",),
    selects=_SELECTS,
    matches=_secrets_matcher,
    positives=(
        tuple(_get_secret(f"prod/app-{i}", i / 2) for i in range(10)),
        tuple(_get_parameter(f"/prod/db/password-{i}", i) for i in range(12)),
        (
            api_call(
                _SECRETS,
                "BatchGetSecretValue",
                {"filters": [{"key": "tag-key", "values": ["team"]}]},
                read_only=True,
            ),
        ),
    ),
    negatives=(
        tuple(_get_secret(f"prod/app-{i}", i / 2) for i in range(9)),
        tuple(_get_secret("prod/app-1", i / 2) for i in range(30)),  # one secret, many reads
        tuple(_get_parameter(f"/prod/flags/{i}", i, decrypt=False) for i in range(12)),
        tuple(_get_secret(f"prod/app-{i}", i * 5) for i in range(10)),  # one per 5 minutes
    ),
    anchors=(
        "GuardDuty: CredentialAccess:IAMUser/AnomalousBehavior",
        "Panther: AWS.SecretsManager.BatchRetrieveSecrets, "
        "AWS.SecretsManager.RetrieveSecretsMultiRegion",
        "Stratus: aws.credential-access.secretsmanager-retrieve-secrets, "
        "aws.credential-access.secretsmanager-batch-retrieve-secrets, "
        "aws.credential-access.ssm-retrieve-securestring-parameters",
    ),
)

_HUB: Final = "securityhub.amazonaws.com"
_FINDING_IDS: Final = param("$.findingIdentifiers").str.json_decode(
    pl.List(pl.Struct({"id": pl.String(), "productArn": pl.String()}))
)
_SUPPRESSED: Final = (
    (param("$.workflow.status") == "SUPPRESSED").fill_null(False)
    | (param("$.workflow.status") == "RESOLVED").fill_null(False)
    | (param("$.recordState") == "ARCHIVED").fill_null(False)
)


def _hub_matcher(
    events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
) -> pl.LazyFrame:
    # Archiving by filter touches every finding it matches, which the event does not list.
    weight = pl.coalesce(_FINDING_IDS.list.len(), pl.lit(_FILTER_PAGE)).cast(pl.UInt32)
    item = pl.coalesce(param("$.findingIdentifiers"), param("$.filters"))
    return _bulk(weight, item)(events.filter(_SUPPRESSED), config, context)


def _update_findings(count: int, status: str, minute: float = 0) -> dict[str, Any]:
    ids = [
        {
            "id": f"arn:aws:securityhub:eu-west-1:111122223333:finding/{minute}-{i}",
            "productArn": "p",
        }
        for i in range(count)
    ]
    return api_call(
        _HUB,
        "BatchUpdateFindings",
        {"findingIdentifiers": ids, "workflow": {"status": status}},
        identity=role_session(),
        event_time=_at(minute),
    )


SECURITY_HUB_FINDINGS_SUPPRESSED_IN_BULK = Detection(
    id="security_hub_findings_suppressed_in_bulk",
    title="Security Hub findings suppressed or archived in bulk",
    description="One principal set bulk_threshold (default 10) or more Security Hub findings "
    "to SUPPRESSED or RESOLVED (BatchUpdateFindings), or ARCHIVED (UpdateFindings), within "
    "bulk_window: hiding what the security team would see. Triage of a few findings is not.",
    severity=5.0,
    mitre=("T1562.001",),
    selects=(pl.col("event_source") == _HUB)
    & pl.col("event_name").is_in(["BatchUpdateFindings", "UpdateFindings"]),
    matches=_hub_matcher,
    positives=(
        (_update_findings(25, "SUPPRESSED"),),
        tuple(_update_findings(4, "RESOLVED", m) for m in (0, 2, 4)),
        (
            api_call(
                _HUB,
                "UpdateFindings",
                {"filters": {"SeverityLabel": [{"Value": "HIGH"}]}, "recordState": "ARCHIVED"},
                identity=role_session(),
            ),
        ),
    ),
    negatives=(
        (_update_findings(3, "SUPPRESSED"),),
        (_update_findings(40, "NOTIFIED"),),
        tuple(_update_findings(4, "SUPPRESSED", m) for m in (0, 30, 60)),
    ),
    anchors=(
        "GuardDuty: none",
        "Panther: none found",
        "Sigma: aws_securityhub_finding_evasion (any BatchUpdateFindings)",
    ),
)
