"""The model loop's deployment: the retraining CronJob (deploy/k8s/components/retraining, rendered
through overlays/prod-with-retraining) and its IAM in deploy/cloudformation/detector.yaml.

The same validators as the other overlays (kubernetes-validate strict, checkov), then what no
schema checks: the CronJob runs a `detector train` the CLI accepts, writes to the registry the
service follows, under its own ServiceAccount whose role may read the trail and write versions
but never move the pointer.
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

import pytest

from detector.cli import _parser

from .policy_eval import as_list
from .template_model import resolve_resources
from .test_cloudformation_stack import _create_stack, aws, endpoint
from .validators import DETECTOR_TEMPLATE, load_documents, load_template, render_overlay, run, tool

__all__ = ["aws", "endpoint"]  # the moto CloudFormation fixtures

OVERLAY = "prod-with-retraining"
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE0123456789"
REGISTRY = {
    "EksOidcIssuer": ISSUER,
    "TrailBucketName": "org-cloudtrail-logs",
    "TrailPrefix": "AWSLogs/o-abcdefghij/",
    "TrailKmsKeyArn": "arn:aws:kms:eu-west-1:111122223333:key/0a1b2c3d-1111-2222-3333-444455556666",
    "ModelRegistryBucketName": "org-detector-models",
    "ModelRegistryPrefix": "detector/models/",
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[dict[str, Any]]]:
    text = render_overlay(OVERLAY)
    path = tmp_path_factory.mktemp("retraining") / f"{OVERLAY}.yaml"
    path.write_text(text)
    return path, load_documents(text)


def named(documents: list[dict[str, Any]], kind: str, prefix: str) -> dict[str, Any]:
    (found,) = [
        d for d in documents if d["kind"] == kind and d["metadata"]["name"].startswith(prefix)
    ]
    return found


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_overlay_matches_the_kubernetes_schemas(
    rendered: tuple[Any, list[dict[str, Any]]], version: str
) -> None:
    result = run([tool("kubernetes-validate"), "--strict", "-k", version, "--quiet", rendered[0]])
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_passes_the_cronjob(rendered: tuple[Any, list[dict[str, Any]]]) -> None:
    result = run(
        [tool("checkov"), "--skip-download", "--output", "json", "--compact",
         "--framework", "kubernetes", "--file", rendered[0]]
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert failed == []
    skipped = {(c["check_id"], c["resource"]) for c in report["results"]["skipped_checks"]}
    assert skipped == {
        ("CKV_K8S_43", "Deployment.cloudtrail-detector.detector"),
        ("CKV_K8S_43", "CronJob.cloudtrail-detector.detector-retrain"),
    }


def test_the_cronjob_trains_into_the_registry_the_service_follows(
    rendered: tuple[Any, list[dict[str, Any]]],
) -> None:
    documents = rendered[1]
    cron = named(documents, "CronJob", "detector-retrain")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    settings = named(documents, "ConfigMap", "detector-retraining")["data"]
    assert container["envFrom"] == [
        {
            "configMapRef": {
                "name": named(documents, "ConfigMap", "detector-retraining")["metadata"]["name"]
            }
        }
    ]
    args = [re.sub(r"\$\((\w+)\)", lambda m: settings[m[1]], arg) for arg in container["args"]]
    parsed = _parser().parse_args(args)  # a flag the CLI does not know would exit here
    assert parsed.command == "train"
    assert parsed.source.startswith("s3://")
    assert str(parsed.out).startswith("s3://")
    service = named(documents, "ConfigMap", "detector-config")["data"]
    assert service["DETECTOR_MODEL"] == f"{str(parsed.out).rstrip('/')}/current"


def test_the_trainer_runs_locked_down_under_its_own_account(
    rendered: tuple[Any, list[dict[str, Any]]],
) -> None:
    documents = rendered[1]
    pod = named(documents, "CronJob", "detector-retrain")["spec"]["jobTemplate"]["spec"][
        "template"
    ]["spec"]
    account = named(documents, "ServiceAccount", "detector-trainer")["metadata"]
    parameters = load_template(DETECTOR_TEMPLATE)["Parameters"]
    assert pod["serviceAccountName"] == account["name"]
    assert account["name"] == parameters["TrainerServiceAccount"]["Default"]
    role = account["annotations"]["eks.amazonaws.com/role-arn"]
    assert ROLE_ARN.match(role)
    assert not role.endswith("/set-by-overlay")
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"/tmp"}
    policy = named(documents, "NetworkPolicy", "detector-trainer")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels(documents).items()


def pod_labels(documents: list[dict[str, Any]]) -> dict[str, str]:
    labels: dict[str, str] = named(documents, "CronJob", "detector-retrain")["spec"]["jobTemplate"][
        "spec"
    ]["template"]["metadata"]["labels"]
    return labels


def statements(resources: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in resources[name]["Properties"]["PolicyDocument"]["Statement"]}


def test_the_trainer_reads_the_trail_and_writes_versions_but_never_the_pointer() -> None:
    resources = resolve_resources(load_template(DETECTOR_TEMPLATE), REGISTRY)
    trainer = statements(resources, "TrainerPolicy")
    assert {sid: set(as_list(s["Action"])) for sid, s in trainer.items()} == {
        "ListTrainingTrail": {"s3:ListBucket"},
        "ReadTrainingTrail": {"s3:GetObject"},
        "PublishModelVersions": {"s3:PutObject"},
        "DecryptTrainingTrailViaS3": {"kms:Decrypt"},
    }
    assert resources["TrainerPolicy"]["Properties"]["Roles"] == ["{TrainerRole}"]
    writable = trainer["PublishModelVersions"]["Resource"]
    objects = "arn:aws:s3:::org-detector-models/detector/models/"
    assert fnmatch.fnmatchcase(objects + "org@0123456789ab/model.skops", writable)
    assert not fnmatch.fnmatchcase(objects + "current", writable)
    assert not fnmatch.fnmatchcase("arn:aws:s3:::org-cloudtrail-logs/AWSLogs/x", writable)
    trust = json.loads(resources["TrainerRole"]["Properties"]["AssumeRolePolicyDocument"])
    (statement,) = trust["Statement"]
    assert statement["Condition"]["StringEquals"][f"{ISSUER}:sub"] == (
        "system:serviceaccount:detector:detector-trainer"
    )


def test_the_service_may_only_read_the_registry() -> None:
    resources = resolve_resources(load_template(DETECTOR_TEMPLATE), REGISTRY)
    service = statements(resources, "ModelRegistryReadPolicy")
    assert {sid: set(as_list(s["Action"])) for sid, s in service.items()} == {
        "ListModelRegistry": {"s3:ListBucket"},
        "ReadModelRegistry": {"s3:GetObject"},
    }
    assert resources["ModelRegistryReadPolicy"]["Properties"]["Roles"] == ["{ServiceRole}"]
    assert service["ReadModelRegistry"]["Resource"] == (
        "arn:aws:s3:::org-detector-models/detector/models/*"
    )


def test_without_a_registry_there_is_no_trainer_and_no_registry_grant() -> None:
    resources = resolve_resources(
        load_template(DETECTOR_TEMPLATE), {"EksOidcIssuer": ISSUER, "TrailBucketName": "trail"}
    )
    assert not {"TrainerRole", "TrainerPolicy", "ModelRegistryReadPolicy"} & set(resources)


@pytest.mark.filterwarnings(
    r"ignore:Tried to parse AWS..(SQS..QueuePolicy|Events..EventBusPolicy|SNS..TopicPolicy"
    r"|S3..BucketPolicy) but it's not supported by moto's CloudFormation implementation:UserWarning"
)
def test_the_stack_creates_the_trainer_role_with_its_policy(aws: Any) -> None:
    outputs = _create_stack(
        aws,
        "detector-retraining",
        DETECTOR_TEMPLATE.read_text(),
        {**REGISTRY, "KubernetesNamespace": "cloudtrail-detector"},
    )
    iam = aws("iam")
    trainer = outputs["TrainerRoleArn"].rsplit("/", 1)[-1]
    assert iam.list_role_policies(RoleName=trainer)["PolicyNames"] == [
        "cloudtrail-detector-retraining"
    ]
    service = outputs["ServiceRoleArn"].rsplit("/", 1)[-1]
    assert (
        "cloudtrail-detector-model-registry"
        in iam.list_role_policies(RoleName=service)["PolicyNames"]
    )
