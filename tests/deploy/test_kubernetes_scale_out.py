"""The scale-out overlay (prod + components/scale-out), rendered by kustomize: schemas, checkov,
and the contract between its objects: routers read the input queue and are scaled on its depth,
consumers read the stream the routers write, pod i of N is consumer i of N, and the single-replica
Deployment is gone (the default overlays keep it and have no router)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from detector.route import ROUTE_OPTIONS
from detector.service import OPTIONS

from .conftest import RenderedOverlay
from .validators import load_documents, render_overlay, run, tool

OVERLAY = "prod-scale-out"
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
CRD_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}
SCHEMA_DIR = Path(__file__).parent / "schemas"


@pytest.fixture(scope="module")
def scale_out(tmp_path_factory: pytest.TempPathFactory) -> RenderedOverlay:
    text = render_overlay(OVERLAY)
    path = tmp_path_factory.mktemp("rendered-scale-out") / f"{OVERLAY}.yaml"
    path.write_text(text)
    return RenderedOverlay(OVERLAY, path, load_documents(text))


def named(overlay: RenderedOverlay, kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in overlay.documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_of(workload: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(workload)["env"]}


def config(overlay: RenderedOverlay) -> dict[str, str]:
    data: dict[str, str] = overlay.one("ConfigMap")["data"]
    return data


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_match_the_kubernetes_schemas(
    scale_out: RenderedOverlay, version: str
) -> None:
    result = run(
        [tool("kubernetes-validate"), "--strict", "-k", version, "--quiet", scale_out.path]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    missing = re.findall(
        r"Couldn't find schema for kind (\S+) with api version (\S+)", result.stdout + result.stderr
    )
    assert {(api, kind) for kind, api in missing} <= CRD_KINDS, missing


def test_keda_objects_match_their_crd_schemas(scale_out: RenderedOverlay) -> None:
    for doc in scale_out.documents:
        if (doc["apiVersion"], doc["kind"]) not in CRD_KINDS:
            continue
        name = f"{doc['apiVersion'].replace('/', '_')}_{doc['kind'].lower()}.json"
        schema = json.loads((SCHEMA_DIR / name).read_text())
        assert not list(jsonschema.Draft202012Validator(schema).iter_errors(doc)), doc["kind"]


def test_checkov_passes_with_only_the_image_digest_skips(scale_out: RenderedOverlay) -> None:
    result = run(
        [
            tool("checkov"),
            "--skip-download",
            "--output",
            "json",
            "--compact",
            "--framework",
            "kubernetes",
            "--file",
            scale_out.path,
        ]
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    results = report["results"]
    assert [c["check_id"] for c in results["failed_checks"]] == []
    assert {(c["check_id"], c["resource"]) for c in results["skipped_checks"]} == {
        ("CKV_K8S_43", "Deployment.cloudtrail-detector.detector-router"),
        ("CKV_K8S_43", "StatefulSet.cloudtrail-detector.detector-consumer"),
    }


def test_the_router_replaces_the_single_replica_reader_of_the_queue(
    scale_out: RenderedOverlay,
) -> None:
    assert [d["metadata"]["name"] for d in scale_out.documents if d["kind"] == "Deployment"] == [
        "detector-router"
    ]
    router = named(scale_out, "Deployment", "detector-router")
    assert container(router)["args"] == ["route"]
    assert router["spec"]["template"]["spec"]["serviceAccountName"] == "detector-router"
    (scaler,) = [d for d in scale_out.documents if d["kind"] == "ScaledObject"]
    assert scaler["spec"]["scaleTargetRef"]["name"] == "detector-router"
    (trigger,) = scaler["spec"]["triggers"]
    assert trigger["metadata"]["queueURL"] == config(scale_out)["DETECTOR_QUEUE_URL"]
    assert trigger["metadata"]["awsRegion"] == config(scale_out)["AWS_REGION"]
    role = named(scale_out, "ServiceAccount", "detector-router")["metadata"]["annotations"]
    assert role["eks.amazonaws.com/role-arn"].endswith(":role/cloudtrail-detector-RouterRole")


def test_consumer_i_of_n_reads_the_stream_the_routers_write(scale_out: RenderedOverlay) -> None:
    consumers = named(scale_out, "StatefulSet", "detector-consumer")
    env = env_of(consumers)
    assert container(consumers)["args"] == ["run"]
    assert env["DETECTOR_SOURCE"] == f"kinesis://{config(scale_out)['DETECTOR_STREAM']}"
    assert env["DETECTOR_CONSUMER_ORDINAL"] == {
        "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
    }
    assert int(env["DETECTOR_CONSUMER_COUNT"]) == consumers["spec"]["replicas"]
    # The state is in S3, one prefix per ordinal: nothing that must survive is on a pod's disk.
    assert config(scale_out)["DETECTOR_STATE_DIR"].startswith("s3://")
    names = [e["name"] for e in container(consumers)["env"]]
    assert names.index("DETECTOR_CONSUMER_ORDINAL") < names.index("DETECTOR_STATE_DIR")
    assert env["DETECTOR_STATE_DIR"] == (
        "$(DETECTOR_STATE_DIR)/consumer-$(DETECTOR_CONSUMER_ORDINAL)"
    )
    assert "volumeClaimTemplates" not in consumers["spec"]
    mounts = {m["name"]: m["mountPath"] for m in container(consumers)["volumeMounts"]}
    assert mounts == {"tmp": "/tmp"}


def test_every_variable_given_names_a_setting(scale_out: RenderedOverlay) -> None:
    known = {o.env for o in (*OPTIONS, *ROUTE_OPTIONS)} | {"AWS_REGION"}
    assert set(config(scale_out)) <= known
    for workload in (
        named(scale_out, "Deployment", "detector-router"),
        named(scale_out, "StatefulSet", "detector-consumer"),
    ):
        assert set(env_of(workload)) <= known


def test_the_default_overlays_stay_single_replica_without_a_router() -> None:
    for overlay in ("dev", "prod"):
        kinds = {
            (d["kind"], d["metadata"]["name"]) for d in load_documents(render_overlay(overlay))
        }
        assert ("Deployment", "detector") in kinds
        assert not {("Deployment", "detector-router"), ("StatefulSet", "detector-consumer")} & kinds


def test_everything_lives_in_the_overlay_namespace(scale_out: RenderedOverlay) -> None:
    for doc in scale_out.documents:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "cloudtrail-detector", doc["metadata"]


def test_router_and_consumers_run_the_prod_image(scale_out: RenderedOverlay) -> None:
    prod = [d for d in load_documents(render_overlay("prod")) if d["kind"] == "Deployment"]
    (image,) = {container(d)["image"] for d in prod}
    assert container(named(scale_out, "Deployment", "detector-router"))["image"] == image
    assert container(named(scale_out, "StatefulSet", "detector-consumer"))["image"] == image
