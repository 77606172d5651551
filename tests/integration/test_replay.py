"""Replay of archived trails: folder and S3 (moto server), resumable, a bootstrap for the service."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from detector.archive import ArchiveFilter, LocalFolderSource, S3Source
from detector.pipeline import Pipeline
from detector.replay import event_frames, replay
from detector.scoring import load_artifact
from detector.sinks import MemoryFindingSink
from detector.state import InMemoryStateStore, LocalStateStore
from detector.synthetic import write_archive

REPO = Path(__file__).resolve().parents[2]
FIXED_NOW = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, small_trail: Any) -> Path:
    root = tmp_path_factory.mktemp("archive")
    write_archive(
        small_trail.records, root, seed=2, organization_id=small_trail.organisation.org_id
    )
    return root


def ids(sink: MemoryFindingSink) -> set[str]:
    return {m.finding_id for m in sink.findings}


async def run(source: Any, name: str, model_dir: Path, **kw: Any) -> tuple[Any, MemoryFindingSink]:
    sink = MemoryFindingSink()
    pipeline = Pipeline(load_artifact(model_dir))
    summary = await replay(source, name, pipeline, sink, clock=lambda: FIXED_NOW, **kw)
    return summary, sink


async def test_a_folder_replay_finds_the_attacks(
    archive: Path, trained_model_dir: Path, small_trail: Any
) -> None:
    summary, sink = await run(LocalFolderSource(archive), str(archive), trained_model_dir)
    assert summary.events == len(small_trail.records)
    assert summary.bad_records == 0
    assert summary.files_skipped > 0  # the digest files
    kinds = {json.loads(m.body)["kind"] for m in sink.findings}
    assert {"model_anomaly", "cloudtrail_logging_stopped", "sqs_encryption_removed"} <= kinds
    assert sum(summary.findings_by_kind.values()) == len(sink.findings) == len(ids(sink))


async def test_decoding_in_worker_processes_or_in_a_thread_gives_the_same_findings(
    archive: Path, trained_model_dir: Path
) -> None:
    pooled, in_pool = await run(
        LocalFolderSource(archive), "a", trained_model_dir, decode_processes=2
    )
    threaded, in_thread = await run(
        LocalFolderSource(archive), "a", trained_model_dir, decode_processes=0
    )
    assert ids(in_pool)
    assert ids(in_pool) == ids(in_thread)
    assert (pooled.events, pooled.bad_records) == (threaded.events, threaded.bad_records)


class FailingAfter(MemoryFindingSink):
    """A sink that dies after some sends, like a replay killed halfway."""

    def __init__(self, sends: int) -> None:
        super().__init__()
        self.left = sends

    async def send(self, findings: Any) -> None:
        if self.left == 0:
            raise RuntimeError("killed")
        self.left -= 1
        await super().send(findings)


async def test_an_interrupted_replay_resumes_from_its_checkpoint(
    archive: Path, trained_model_dir: Path
) -> None:
    _, whole = await run(LocalFolderSource(archive), "a", trained_model_dir)
    store = InMemoryStateStore()
    pipeline = Pipeline(load_artifact(trained_model_dir))
    # Killed halfway through its sends (the model's learning period leaves the first days
    # with few findings, so a fixed count may never be reached).
    assert whole.send_calls >= 2
    first = FailingAfter(sends=whole.send_calls // 2)
    with pytest.raises(RuntimeError, match="killed"):
        await replay(
            LocalFolderSource(archive), "a", pipeline, first, store=store,
            checkpoint_every=5_000, clock=lambda: FIXED_NOW,
        )  # fmt: skip
    assert store.load() is not None, "a checkpoint was written before the failure"
    second = MemoryFindingSink()
    summary = await replay(
        LocalFolderSource(archive), "a", pipeline, second, store=store,
        checkpoint_every=5_000, clock=lambda: FIXED_NOW,
    )  # fmt: skip
    assert summary.resumed
    # Together the two runs report what one uninterrupted run does (a finding sent before the
    # failure but after the checkpoint is reported again, with the same id).
    assert ids(first) | ids(second) == ids(whole)


async def test_replay_from_s3_gives_the_folders_findings(
    archive: Path, trained_model_dir: Path, small_trail: Any, moto_endpoint: str
) -> None:
    """The attack day's files in a moto S3 bucket (moto's S3 is slow per object, so not the
    whole archive) give the same findings as the same files read from the folder."""
    import aiobotocore.session

    from detector.aws import StaticCredentials

    day = small_trail.config.start + timedelta(days=small_trail.config.baseline_days)
    day_path = f"/{day:%Y/%m/%d}/"
    files = [p for p in archive.rglob("*.json.gz") if day_path in f"/{p.relative_to(archive)}"]
    session = aiobotocore.session.get_session()
    async with session.create_client(
        "s3", endpoint_url=moto_endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    ) as s3:  # fmt: skip
        await s3.create_bucket(Bucket="trail")
        for chunk in range(0, len(files), 32):
            await asyncio.gather(
                *(
                    s3.put_object(
                        Bucket="trail", Key=f"org/{p.relative_to(archive)}", Body=p.read_bytes()
                    )
                    for p in files[chunk : chunk + 32]
                )
            )
    window = ArchiveFilter(since=day, until=day + timedelta(hours=23))
    _, from_folder = await run(LocalFolderSource(archive), "f", trained_model_dir, filter=window)
    source = S3Source.from_url(
        "s3://trail/org", endpoint_url=moto_endpoint, region_name="us-east-1",
        credentials=StaticCredentials("test", "test"),
    )  # fmt: skip
    async with source:
        _, from_s3 = await run(source, "s3://trail/org", trained_model_dir, filter=window)
    assert ids(from_s3) == ids(from_folder)
    assert ids(from_folder), "the attack day has findings"


async def test_a_replay_leaves_state_the_service_starts_from(
    archive: Path, trained_model_dir: Path, small_trail: Any, small_events: Any, tmp_path: Path
) -> None:
    """Replaying history into a state dir, then the attack day, raises no flood of novelty."""
    cut = small_trail.config.start + timedelta(days=small_trail.config.baseline_days)
    history, attack = ArchiveFilter(until=cut), ArchiveFilter(since=cut)
    store = LocalStateStore(tmp_path / "state")
    await run(LocalFolderSource(archive), "history", trained_model_dir, filter=history, store=store)
    _, warm = await run(
        LocalFolderSource(archive), "live", trained_model_dir, filter=attack, store=store
    )
    _, cold = await run(LocalFolderSource(archive), "live", trained_model_dir, filter=attack)

    def model_findings(sink: MemoryFindingSink) -> list[dict[str, Any]]:
        found = [json.loads(m.body) for m in sink.findings]
        return [f for f in found if f["kind"] == "model_anomaly"]

    # Cold, every principal is new: the model is in its learning period and stays quiet (the
    # signatures do not); warm, what is left is (mostly) the attacks.
    attackers = {lb.principal_arn.split("/")[1] for lb in small_trail.labels}
    warm_noise = [
        f for f in model_findings(warm) if not any(a in f["principal"] for a in attackers)
    ]
    assert model_findings(cold) == []
    assert len(cold.findings) > 0, "signature detections report from the first minute"
    assert len(model_findings(warm)) > len(warm_noise), "the attacks are still found"


def test_event_frames_read_an_archive_in_event_time_order(archive: Path, small_trail: Any) -> None:
    frames = list(event_frames(lambda: contextlib.nullcontext(LocalFolderSource(archive))))
    assert sum(f.height for f in frames) == len(small_trail.records)
    lows = [f["event_time"].min() for f in frames if f.height]
    assert lows == sorted(lows)


def test_detector_train_and_replay_commands(
    archive: Path, tmp_path: Path, small_trail: Any
) -> None:
    cut = small_trail.config.start + timedelta(days=small_trail.config.baseline_days)
    model = tmp_path / "model"
    trained = subprocess.run(
        [sys.executable, "-m", "detector.cli", "train", str(archive), "--out", str(model),
         "--until", cut.isoformat(), "--seed", "4"],
        capture_output=True, text=True, cwd=REPO, timeout=600, check=False,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert "trained model@" in trained.stdout
    assert load_artifact(model).manifest["training"]["until"] < cut.isoformat()
    out = tmp_path / "findings.jsonl"
    replayed = subprocess.run(
        [sys.executable, "-m", "detector.cli", "replay", str(archive), "--model", str(model),
         "--out", str(out), "--since", cut.isoformat()],
        capture_output=True, text=True, cwd=REPO, timeout=600, check=False,
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed" in replayed.stdout
    findings = [json.loads(line) for line in out.read_text().splitlines()]
    assert findings
    assert all(f["schema_version"] == 3 and f["finding_id"] for f in findings)


def test_a_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "detector.cli", "replay", "s3://", "--out", str(tmp_path / "x")],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "detector: error:" in result.stderr
