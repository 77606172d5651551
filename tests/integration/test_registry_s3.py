"""``detector train --out s3://...`` and ``detector models list/promote/rollback`` against a
real moto server (the commands run in-process, through ``detector.cli.main``)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from detector.cli import main
from detector.registry import ModelRegistry, S3ObjectStore
from detector.synthetic import write_archive
from tests.model_versions import model_copy

REGION = "us-east-1"
BUCKET = "org-models"
ROOT = f"s3://{BUCKET}/detector/models"


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    client = boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint)
    client.create_bucket(Bucket=BUCKET)
    return client


def publish_copy(tmp_path: Path, name: str, endpoint: str) -> str:
    folder, artifact = model_copy(tmp_path, name)

    async def go() -> str:
        async with S3ObjectStore.from_url(ROOT, endpoint_url=endpoint) as store:
            return await ModelRegistry(store).publish(folder, artifact)

    return asyncio.run(go())


def test_train_publishes_a_verified_version_with_its_quality_report(
    s3: Any, small_trail: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "archive"
    write_archive(
        small_trail.records, archive, seed=2, organization_id=small_trail.organisation.org_id
    )
    start = small_trail.config.start
    until = start + timedelta(days=2)
    status = main(
        ["train", str(archive), "--since", start.isoformat(), "--until", until.isoformat(),
         "--out", ROOT, "--name", "org", "--seed", "3"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0, out
    version = out.split("published ", 1)[1].split(" ", 1)[0]
    assert version.startswith("org@")
    keys = {
        o["Key"].rsplit("/", 1)[1]
        for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"detector/models/{version}/")["Contents"]
    }
    assert {"manifest.json", "model.skops", "peers.json", "README.md", "quality.json"} <= keys
    report = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"detector/models/{version}/quality.json")["Body"].read()
    )
    assert report["version"] == version
    assert report["training"]["events"] > 0
    assert report["training_findings_per_1000_principal_days"] is not None


def test_list_promote_and_rollback(
    s3: Any, moto_endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = publish_copy(tmp_path, "org", moto_endpoint)
    second = publish_copy(tmp_path, "org-next", moto_endpoint)

    def pointer() -> dict[str, Any]:
        body = s3.get_object(Bucket=BUCKET, Key="detector/models/current")["Body"].read()
        return dict(json.loads(body))

    assert main(["models", "list", ROOT]) == 0
    listed = capsys.readouterr().out
    assert first in listed
    assert second in listed
    assert main(["models", "rollback", ROOT]) == 2  # nothing promoted yet
    assert "nothing to roll back" in capsys.readouterr().err

    assert main(["models", "promote", ROOT, first]) == 0
    assert main(["models", "promote", ROOT, second]) == 0
    assert (pointer()["version"], pointer()["previous"]) == (second, [first])
    capsys.readouterr()
    assert main(["models", "list", ROOT]) == 0
    starred = [line for line in capsys.readouterr().out.splitlines() if line.startswith("*")]
    assert len(starred) == 1
    assert second in starred[0]

    assert main(["models", "rollback", ROOT]) == 0
    assert (pointer()["version"], pointer()["previous"]) == (first, [])
    assert main(["models", "promote", ROOT, "org@ffffffffffff"]) == 2
    assert "no version org@ffffffffffff" in capsys.readouterr().err
