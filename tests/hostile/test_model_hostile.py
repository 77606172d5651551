"""Tampered and malformed model folders: ``detector run`` (a real process) exits 2 naming the
file and the field before it receives a message; ``detector replay`` and ``train`` exit 2 as
well; a signed model whose weight was changed (and its hash fixed) is refused."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import skops.io as sio

from detector.errors import ConfigError, ModelError
from detector.scoring import (
    ModelSigning,
    load_artifact,
    save_artifact,
    signing_from_environment,
)
from detector.scoring._artifact import TRUSTED_TYPES
from tests.hostile.conftest import detector
from tests.integration.moto_support import SqsAdmin

KEY = "a test key of enough length"
Manifest = dict[str, Any]


def copy_model(source: Path, to: Path) -> Path:
    shutil.copytree(source, to)
    return to


def rewrite_manifest(folder: Path, change: Callable[[Manifest], Any]) -> None:
    path = folder / "manifest.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


BAD_MANIFESTS: dict[str, tuple[Callable[[Manifest], Any], str]] = {
    "a word for the threshold": (lambda m: m | {"threshold": "high"}, "threshold"),
    "a list": (lambda m: [], "expected a JSON object"),
    "no window": (lambda m: {k: v for k, v in m.items() if k != "window_seconds"}, "window"),
    "1e999 as text": (lambda m: m | {"threshold": "1e999"}, "threshold"),
    "an infinite threshold": (lambda m: m | {"threshold": float("inf")}, "threshold"),
    "a live-threshold bound below the threshold": (
        lambda m: m | {"calibration": {"threshold_max": -1.0}},
        "calibration",
    ),
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
async def test_detector_run_exits_2_naming_file_and_field_before_receiving(
    case: str, sqs_admin: SqsAdmin, trained_model_dir: Path, tmp_path: Path
) -> None:
    change, named = BAD_MANIFESTS[case]
    model = copy_model(trained_model_dir, tmp_path / "model")
    rewrite_manifest(model, change)
    await assert_run_refuses(sqs_admin, model, tmp_path, {}, ["manifest.json", named])


async def test_detector_run_exits_2_on_a_model_changed_after_signing(
    sqs_admin: SqsAdmin, trained_model_dir: Path, tmp_path: Path
) -> None:
    folder = signed_copy(trained_model_dir, tmp_path / "signed")
    change_one_weight(folder)
    key = {"DETECTOR_MODEL_HMAC_KEY": KEY}
    await assert_run_refuses(sqs_admin, folder, tmp_path, key, ["signature does not match"])


async def assert_run_refuses(
    sqs_admin: SqsAdmin, model: Path, tmp_path: Path, extra: dict[str, str], named: list[str]
) -> None:
    """``detector run`` on ``model`` exits 2 naming ``named``, and never receives."""
    url = await sqs_admin.create_queue("detector-input", visibility_timeout=30)
    await sqs_admin.client.send_message(QueueUrl=url, MessageBody="{}")
    env = extra | {
        "AWS_ENDPOINT_URL": sqs_admin.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "DETECTOR_QUEUE_URL": url,
        "DETECTOR_MODEL": str(model),
        "DETECTOR_FINDINGS_FILE": str(tmp_path / "findings.jsonl"),
        "DETECTOR_STATE_DIR": str(tmp_path / "state"),
        "DETECTOR_METRICS_PORT": "0",
    }
    ran = detector("run", env=env, timeout=120)
    assert ran.code == 2, ran.stderr
    assert "Traceback" not in ran.stderr
    assert all(name in ran.stderr for name in named), ran.stderr
    assert await sqs_admin.depth(url) == (1, 0)  # never received


def test_detector_replay_exits_2_on_a_bad_manifest(trained_model_dir: Path, tmp_path: Path) -> None:
    model = copy_model(trained_model_dir, tmp_path / "model")
    rewrite_manifest(model, lambda m: m | {"threshold": "high"})
    (tmp_path / "archive").mkdir()
    ran = detector("replay", str(tmp_path / "archive"), "--model", str(model))
    assert ran.code == 2
    assert "field 'threshold'" in ran.stderr
    assert "Traceback" not in ran.stderr


def change_one_weight(folder: Path) -> None:
    """What whoever can write the model folder can do: change a weight, fix its hash."""
    model = sio.load(folder / "model.skops", trusted=list(TRUSTED_TYPES))
    model.forest_.offset_ = model.forest_.offset_ - 0.25
    sio.dump(model, folder / "model.skops")
    digest = hashlib.sha256((folder / "model.skops").read_bytes()).hexdigest()
    rewrite_manifest(folder, lambda m: m | {"model_sha256": digest})


def signed_copy(source: Path, to: Path) -> Path:
    """The path ``detector train`` takes with a key: :func:`save_artifact` with signing."""
    artifact = load_artifact(source)
    manifest = {k: v for k, v in artifact.manifest.items() if not k.endswith("_sha256")}
    card = (source / "README.md").read_text()
    save_artifact(to, artifact.model, artifact.peers, manifest, card, ModelSigning(KEY.encode()))
    return to


def test_a_signed_model_loads_with_its_key_and_a_changed_weight_is_refused(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    signing = signing_from_environment({"DETECTOR_MODEL_HMAC_KEY": KEY})
    folder = signed_copy(trained_model_dir, tmp_path / "signed")
    assert load_artifact(folder, signing).threshold > 0
    change_one_weight(folder)
    load_artifact(folder)  # the hash was fixed: without a key nothing can tell
    with pytest.raises(ModelError, match=r"manifest.sig: the signature does not match"):
        load_artifact(folder, signing)
    ran = detector(
        "replay",
        str(tmp_path),
        "--model",
        str(folder),
        env={"DETECTOR_MODEL_HMAC_KEY": KEY},
    )
    assert ran.code == 2
    assert "signature does not match" in ran.stderr


def test_an_unsigned_model_is_refused_when_signing_is_configured_or_required(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelError, match=r"manifest.sig: missing: the model is unsigned"):
        load_artifact(trained_model_dir, ModelSigning(KEY.encode()))
    with pytest.raises(ConfigError, match="DETECTOR_REQUIRE_SIGNED_MODEL"):
        signing_from_environment({"DETECTOR_REQUIRE_SIGNED_MODEL": "1"})
    for command in ("replay", "train"):
        extra = ["--out", str(tmp_path / "out")] if command == "train" else []
        ran = detector(command, str(tmp_path), *extra, env={"DETECTOR_REQUIRE_SIGNED_MODEL": "1"})
        assert ran.code == 2, (command, ran.stderr)
        assert "no key is" in ran.stderr
