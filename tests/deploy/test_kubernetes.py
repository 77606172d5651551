"""The Kubernetes overlays, rendered by kustomize: schemas, then the contract between the objects.

Core objects are validated by kubernetes-validate (strict: unknown fields fail); the KEDA
objects are CRDs it has no schema for, so they are validated against the JSON schemas in
tests/deploy/schemas/. The invariant tests check what no schema can: probes on the port the
service listens on, the scaler watching the queue the service reads, selectors that select.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from detector.service import OPTIONS, resolve_settings

from .conftest import RenderedOverlay
from .dockerfile_model import env_of, final_stage, parse_dockerfile
from .template_model import resolve_resources
from .validators import (
    DETECTOR_TEMPLATE,
    DOCKERFILE,
    OVERLAYS,
    load_template,
    run,
    tool,
)

# The oldest minor version the manifests must apply to, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
CRD_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}
SCHEMA_DIR = Path(__file__).parent / "schemas"
CONFIG_KEYS = {
    "DETECTOR_QUEUE_URL",
    "DETECTOR_FINDINGS_QUEUE_URL",
    "DETECTOR_STATE_DIR",
    "DETECTOR_STATE_KMS_KEY",
    "DETECTOR_MODEL",
    "DETECTOR_METRICS_PORT",
    "AWS_REGION",
}
SQS_URL = re.compile(r"^https://sqs\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/\d{12}/[\w-]+$")
STATE_URL = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[\w/-]+$")
KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):\d{12}:key/[0-9a-f-]+$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")


@pytest.fixture(params=OVERLAYS)
def overlay(
    request: pytest.FixtureRequest, rendered_overlays: dict[str, RenderedOverlay]
) -> RenderedOverlay:
    return rendered_overlays[request.param]


def _pod_spec(overlay: RenderedOverlay) -> dict[str, Any]:
    spec: dict[str, Any] = overlay.one("Deployment")["spec"]["template"]["spec"]
    return spec


def _container(overlay: RenderedOverlay) -> dict[str, Any]:
    (container,) = _pod_spec(overlay)["containers"]
    return dict(container)


def _config(overlay: RenderedOverlay) -> dict[str, str]:
    data: dict[str, str] = overlay.one("ConfigMap")["data"]
    return data


# --- schemas --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_match_the_kubernetes_schemas(
    rendered_overlays: dict[str, RenderedOverlay], version: str
) -> None:
    paths = [overlay.path for overlay in rendered_overlays.values()]
    result = run([tool("kubernetes-validate"), "--strict", "-k", version, "--quiet", *paths])
    assert result.returncode == 0, result.stdout + result.stderr
    # A kind without a schema only warns: make sure that only happens to the KEDA CRDs, or a
    # typo in a core apiVersion would pass unvalidated.
    missing = re.findall(
        r"Couldn't find schema for kind (\S+) with api version (\S+)", result.stdout + result.stderr
    )
    assert {(api, kind) for kind, api in missing} <= CRD_KINDS, missing


def test_keda_objects_match_their_crd_schemas(
    rendered_overlays: dict[str, RenderedOverlay],
) -> None:
    for overlay in rendered_overlays.values():
        crds = [doc for doc in overlay.documents if (doc["apiVersion"], doc["kind"]) in CRD_KINDS]
        assert {(doc["apiVersion"], doc["kind"]) for doc in crds} == CRD_KINDS
        for doc in crds:
            name = f"{doc['apiVersion'].replace('/', '_')}_{doc['kind'].lower()}.json"
            schema = json.loads((SCHEMA_DIR / name).read_text())
            jsonschema.Draft202012Validator.check_schema(schema)
            errors = sorted(
                jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: e.path
            )
            assert not errors, f"{overlay.name} {doc['kind']}: " + "; ".join(
                f"{list(error.path)}: {error.message}" for error in errors
            )


def test_crd_schemas_reject_what_they_should(rendered_overlays: dict[str, RenderedOverlay]) -> None:
    """The hand-written schemas are not vacuous: typical mistakes fail them."""
    schema = json.loads((SCHEMA_DIR / "keda.sh_v1alpha1_scaledobject.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    good = rendered_overlays["prod"].one("ScaledObject")
    assert validator.is_valid(good)
    (trigger,) = good["spec"]["triggers"]

    def with_spec(**changes: Any) -> dict[str, Any]:
        return {**good, "spec": {**good["spec"], **changes}}

    def with_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
        return with_spec(triggers=[{**trigger, "metadata": metadata}])

    assert not validator.is_valid(with_spec(minReplicas=1)), "HPA's field name, not KEDA's"
    assert not validator.is_valid(with_metadata({**trigger["metadata"], "queueLength": 500}))
    assert not validator.is_valid(with_metadata({"awsRegion": "eu-west-1"})), "no queue"


# --- the Deployment -----------------------------------------------------------------------------


def test_probes_hit_the_metrics_port(overlay: RenderedOverlay) -> None:
    container = _container(overlay)
    (port,) = container["ports"]
    assert port == {"name": "metrics", "containerPort": 9102, "protocol": "TCP"}
    assert _config(overlay)["DETECTOR_METRICS_PORT"] == str(port["containerPort"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def test_runs_detector_run_with_the_config(overlay: RenderedOverlay) -> None:
    container = _container(overlay)
    assert container.get("command") is None, "keep the image's ENTRYPOINT (detector)"
    assert container["args"] == ["run"]
    config_name = overlay.one("ConfigMap")["metadata"]["name"]
    assert container["envFrom"] == [{"configMapRef": {"name": config_name}}]
    keys = set(_config(overlay))
    assert keys >= CONFIG_KEYS
    # Anything more is a setting of `detector run` (a typo would be silently ignored).
    options = {option.env for option in OPTIONS}
    assert keys - CONFIG_KEYS <= options, sorted(keys - CONFIG_KEYS - options)


def test_image_comes_from_the_overlay(overlay: RenderedOverlay) -> None:
    image = _container(overlay)["image"]
    repository, _, tag = image.rpartition(":")
    assert repository.endswith("/cloudtrail-detector"), "the overlay names the registry"
    assert tag
    assert tag != "latest"


def test_security_context_is_locked_down(overlay: RenderedOverlay) -> None:
    pod = _pod_spec(overlay)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = _container(overlay)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_image_user_matches_the_pod_user(overlay: RenderedOverlay) -> None:
    stage = final_stage(parse_dockerfile(DOCKERFILE))
    (user,) = [item.arguments for item in stage if item.keyword == "USER"]
    uid, _, gid = user.partition(":")
    context = _container(overlay)["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == (int(uid), int(gid))


def test_the_only_writable_path_is_bounded_scratch(overlay: RenderedOverlay) -> None:
    mounts = {mount["mountPath"]: mount["name"] for mount in _container(overlay)["volumeMounts"]}
    assert set(mounts) == {"/tmp"}
    volumes = {volume["name"]: volume for volume in _pod_spec(overlay)["volumes"]}
    for name in mounts.values():
        assert volumes[name].get("emptyDir", {}).get("sizeLimit"), "bounded scratch space"


def test_state_survives_the_pod_in_the_stacks_bucket_under_its_key(
    overlay: RenderedOverlay,
) -> None:
    """Nothing that must survive lives on the pod: the state is in S3, encrypted with the key."""
    config = _config(overlay)
    assert STATE_URL.match(config["DETECTOR_STATE_DIR"]), config["DETECTOR_STATE_DIR"]
    assert "set-by-overlay" not in config["DETECTOR_STATE_DIR"], "the overlay sets the bucket"
    key = KEY_ARN.match(config["DETECTOR_STATE_KMS_KEY"])
    assert key, config["DETECTOR_STATE_KMS_KEY"]
    assert key["region"] == config["AWS_REGION"]
    settings = resolve_settings({}, config)
    assert settings.state_dir == config["DETECTOR_STATE_DIR"]
    assert settings.state_kms_key == config["DETECTOR_STATE_KMS_KEY"]


def test_config_matches_the_image_defaults(overlay: RenderedOverlay) -> None:
    image_env = env_of(final_stage(parse_dockerfile(DOCKERFILE)))
    config = _config(overlay)
    for key in ("DETECTOR_MODEL", "DETECTOR_METRICS_PORT"):
        assert config[key] == image_env[key], key


def test_resources_are_requested_and_limited(overlay: RenderedOverlay) -> None:
    resources = _container(overlay)["resources"]
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[bound]), bound


def test_drains_take_longer_than_a_batch(overlay: RenderedOverlay) -> None:
    assert _pod_spec(overlay)["terminationGracePeriodSeconds"] >= 60
    strategy = overlay.one("Deployment")["spec"]["strategy"]
    assert strategy == {"type": "Recreate"}, "the old pod checkpoints before the new one loads"


def test_queue_visibility_outlasts_a_drain(overlay: RenderedOverlay) -> None:
    """A message received just before SIGTERM must not reappear while the pod still drains."""
    template = load_template(DETECTOR_TEMPLATE)
    default_timeout = int(template["Parameters"]["VisibilityTimeoutSeconds"]["Default"])
    minimum_timeout = int(template["Parameters"]["VisibilityTimeoutSeconds"]["MinValue"])
    grace = _pod_spec(overlay)["terminationGracePeriodSeconds"]
    assert default_timeout >= 2 * grace
    assert minimum_timeout < grace, "documented in the parameter: keep it above the grace period"


def test_replicas_belong_to_the_autoscaler(overlay: RenderedOverlay) -> None:
    assert "replicas" not in overlay.one("Deployment")["spec"]


# --- identity -----------------------------------------------------------------------------------


def test_service_account_carries_the_iam_role(overlay: RenderedOverlay) -> None:
    account = overlay.one("ServiceAccount")
    role_arn = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert ROLE_ARN.match(role_arn), role_arn
    assert not role_arn.endswith("/set-by-overlay"), "the overlay sets the stack's role"
    assert _pod_spec(overlay)["serviceAccountName"] == account["metadata"]["name"]


def test_service_account_matches_the_irsa_trust_defaults(overlay: RenderedOverlay) -> None:
    parameters = load_template(DETECTOR_TEMPLATE)["Parameters"]
    account = overlay.one("ServiceAccount")["metadata"]
    assert account["name"] == parameters["KubernetesServiceAccount"]["Default"]
    # The namespace differs per overlay; it is a stack parameter (README, step 2).
    assert re.fullmatch(parameters["KubernetesNamespace"]["AllowedPattern"], account["namespace"])


# --- scaling, disruption, metrics, network --------------------------------------------------------


def test_scaler_watches_the_queue_the_service_reads(overlay: RenderedOverlay) -> None:
    scaled = overlay.one("ScaledObject")
    config = _config(overlay)
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    assert trigger["metadata"]["queueURL"] == config["DETECTOR_QUEUE_URL"]
    assert trigger["metadata"]["awsRegion"] == config["AWS_REGION"]
    for key in ("DETECTOR_QUEUE_URL", "DETECTOR_FINDINGS_QUEUE_URL"):
        url = SQS_URL.match(config[key])
        assert url, config[key]
        assert url["region"] == config["AWS_REGION"], config[key]
    assert config["DETECTOR_QUEUE_URL"] != config["DETECTOR_FINDINGS_QUEUE_URL"]
    assert (
        trigger["authenticationRef"]["name"]
        == overlay.one("TriggerAuthentication")["metadata"]["name"]
    )
    deployment = overlay.one("Deployment")
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]


def test_keda_uses_its_operator_identity(overlay: RenderedOverlay) -> None:
    identity = overlay.one("TriggerAuthentication")["spec"]["podIdentity"]
    assert identity == {"provider": "aws", "identityOwner": "keda"}


def test_one_replica_until_state_is_shared(rendered_overlays: dict[str, RenderedOverlay]) -> None:
    # Profiles and windows are per principal; replicas on one standard queue would each see
    # part of a principal's events, and the S3 state takes one writer (docs/state.md).
    for overlay in rendered_overlays.values():
        assert overlay.one("ScaledObject")["spec"]["maxReplicaCount"] == 1


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def test_selectors_select_the_detector_pods(overlay: RenderedOverlay) -> None:
    deployment = overlay.one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert _selects(
        overlay.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"], pod_labels
    )
    assert _selects(overlay.one("Service")["spec"]["selector"], pod_labels)
    assert _selects(overlay.one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"], pod_labels)


def test_disruption_budget_never_blocks_a_drain(overlay: RenderedOverlay) -> None:
    spec = overlay.one("PodDisruptionBudget")["spec"]
    assert spec.get("maxUnavailable") == 1
    assert "minAvailable" not in spec


def test_metrics_service_is_annotated_for_prometheus(overlay: RenderedOverlay) -> None:
    service = overlay.one("Service")
    annotations = service["metadata"]["annotations"]
    (port,) = service["spec"]["ports"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert (
        annotations["prometheus.io/port"]
        == str(port["port"])
        == _config(overlay)["DETECTOR_METRICS_PORT"]
    )
    assert port["targetPort"] == "metrics"


def test_network_policy_opens_only_metrics_in_and_dns_https_out(overlay: RenderedOverlay) -> None:
    spec = overlay.one("NetworkPolicy")["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    ingress_ports = {(p["port"], p["protocol"]) for rule in spec["ingress"] for p in rule["ports"]}
    egress_ports = {(p["port"], p["protocol"]) for rule in spec["egress"] for p in rule["ports"]}
    assert ingress_ports == {(9102, "TCP")}
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (443, "TCP")}


def test_everything_lives_in_the_overlay_namespace(overlay: RenderedOverlay) -> None:
    namespace = overlay.one("Namespace")
    name = namespace["metadata"]["name"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in overlay.documents:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == name, doc["kind"]


def test_irsa_trust_names_the_overlays_service_account(overlay: RenderedOverlay) -> None:
    """Deploying the stack with the overlay's namespace yields a trust for exactly this pod."""
    account = overlay.one("ServiceAccount")["metadata"]
    resources = resolve_resources(
        load_template(DETECTOR_TEMPLATE),
        {
            "EksOidcIssuer": "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE0123456789",
            "KubernetesNamespace": account["namespace"],
            "KubernetesServiceAccount": account["name"],
        },
    )
    trust = json.loads(resources["ServiceRole"]["Properties"]["AssumeRolePolicyDocument"])
    conditions = trust["Statement"][0]["Condition"]["StringEquals"]
    subject = f"system:serviceaccount:{account['namespace']}:{account['name']}"
    assert conditions["oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE0123456789:sub"] == subject
