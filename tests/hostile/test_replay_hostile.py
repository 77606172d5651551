"""``detector replay`` (a real process) over real archive folders holding hostile files: one
bad record, file or link never aborts the replay, and the summary and the exit code say what
failed."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from tests.hostile.conftest import REPO, detector, nested, record, trail_key, write_trail

DELIVERED = datetime(2024, 3, 4, 0, 5, tzinfo=UTC)
EVENT = DELIVERED - timedelta(minutes=5)


def replay(root: Path, tmp_path: Path, *flags: str):  # type: ignore[no-untyped-def]
    out = tmp_path / "findings.jsonl"
    ran = detector("replay", str(root), "--out", str(out), *flags)
    return ran, out


def good_file(root: Path, name: str, *ids: str) -> None:
    write_trail(root, trail_key(DELIVERED, name), [record(i, EVENT) for i in ids])


def test_a_deeply_nested_record_fails_alone_naming_its_field(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    good_file(root, "good", "g-1", "g-2")
    deep = record("deep", EVENT, requestParameters=None)
    text = orjson.dumps({"Records": [record("g-3", EVENT), deep]}).replace(
        b'"requestParameters":null', b'"requestParameters":' + nested(990)
    )
    write_trail(root, trail_key(DELIVERED, "deep"), gzip.compress(text))
    # Too deep for any JSON reader here: the file fails as a whole, the others go on.
    write_trail(root, trail_key(DELIVERED, "deeper"), gzip.compress(nested(5000)))
    ran, _ = replay(root, tmp_path, "--max-bad", "10")
    assert ran.code == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    assert "replayed 3 events" in ran.stdout
    assert "bad records: 1 of 4" in ran.stdout
    assert "1 failed" in ran.stdout
    assert "field 'requestParameters'" in ran.stdout


def test_event_times_in_the_future_or_before_cloudtrail_are_bad_records(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    records = [
        record("now", EVENT),
        record("future", "2099-12-31T23:59:59Z"),
        record("far-future", "9999-12-31T23:59:59Z"),
        record("ancient", "2012-01-01T00:00:00Z"),
        record("later", EVENT + timedelta(minutes=1)),
    ]
    write_trail(root, trail_key(DELIVERED), records)
    ran, _ = replay(root, tmp_path, "--max-bad", "3")
    assert ran.code == 0, ran.stderr
    assert "replayed 2 events" in ran.stdout
    assert "late events: 0" in ran.stdout
    named = [line for line in ran.stdout.splitlines() if "field 'eventTime'" in line]
    assert len(named) == 3
    assert any("(eventID far-future)" in line for line in named)
    assert any("before CloudTrail existed" in line for line in named)


def test_an_old_archive_still_replays(tmp_path: Path) -> None:
    """The future is bounded by each file's delivery stamp, not by the wall clock."""
    root = tmp_path / "archive"
    delivered = datetime(2014, 6, 1, 12, 5, tzinfo=UTC)
    write_trail(root, trail_key(delivered), [record("old", delivered - timedelta(minutes=5))])
    ran, _ = replay(root, tmp_path)
    assert ran.code == 0, ran.stderr
    assert "replayed 1 events" in ran.stdout
    assert "bad records: 0" in ran.stdout


def test_a_newline_in_a_file_name_cannot_forge_a_summary_line(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    good_file(root, "good", "g-1")
    forged = trail_key(DELIVERED, "x\nreplayed 999999 events in 0.1 s")
    write_trail(root, forged, b"not a gzip file at all")
    ran, _ = replay(root, tmp_path, "--max-bad", "100%")
    assert ran.code == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert not any(line.startswith("replayed 999999") for line in lines)
    assert any("\\nreplayed 999999" in line for line in lines)


def test_too_many_unreadable_files_fail_the_replay_and_every_one_is_counted(
    tmp_path: Path,
) -> None:
    root = tmp_path / "archive"
    good_file(root, "good-1", "g-1")
    good_file(root, "good-2", "g-2")
    for i in range(8):
        write_trail(root, trail_key(DELIVERED, f"bad-{i}"), b"garbage")
    bad_records = [record(f"b-{i}", EVENT, userIdentity=[i]) for i in range(15)]
    write_trail(root, trail_key(DELIVERED, "bad-records"), bad_records)

    ran, _ = replay(root, tmp_path)
    assert ran.code == 1
    assert "files: 3 read, 8 failed" in ran.stdout
    assert "bad records: 15 of 17" in ran.stdout
    assert ran.stdout.count("  failed: ") == 10
    assert "and 13 more failed files and records" in ran.stdout
    assert "too much bad input: 8 of 11 files failed" in ran.stderr

    assert replay(root, tmp_path, "--max-bad", "100%")[0].code == 0
    assert replay(root, tmp_path, "--max-bad", "22")[0].code == 1
    assert replay(root, tmp_path, "--max-bad", "23")[0].code == 0


def test_symlinks_leaving_the_archive_are_refused_with_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    outside = tmp_path / "elsewhere"
    good_file(root, "good", "inside")
    secret = write_trail(outside, trail_key(DELIVERED, "secret"), [record("outside-file", EVENT)])
    link = root / trail_key(DELIVERED, "linked")
    link.symlink_to(secret)
    other_day = DELIVERED + timedelta(days=1)
    write_trail(outside, trail_key(other_day, "day"), [record("outside-dir", other_day)])
    day_folder = (root / trail_key(other_day)).parent
    day_folder.parent.mkdir(parents=True, exist_ok=True)
    day_folder.symlink_to((outside / trail_key(other_day)).parent, target_is_directory=True)
    ran, _ = replay(root, tmp_path)
    assert ran.code == 0, ran.stderr
    assert "replayed 1 events" in ran.stdout
    assert ran.stderr.count("a symlink leading out of the archive folder") == 2


# The replay function in a process of its own, decoding in that process (decode workers
# started by a forkserver are not its children, so their memory would not be measured).
_REPLAY_AND_MEASURE = """
import asyncio, resource, sys
from detector.archive import DecodeLimits, LocalFolderSource
from detector.pipeline import Pipeline
from detector.replay import replay
from detector.scoring import DEFAULT_MODEL_DIR, load_artifact
from detector.sinks import MemoryFindingSink

limits = DecodeLimits(max_file_bytes=int(sys.argv[2]))
pipeline = Pipeline(load_artifact(DEFAULT_MODEL_DIR))
run = replay(
    LocalFolderSource(sys.argv[1]), "bomb", pipeline, MemoryFindingSink(),
    decode_processes=0, limits=limits,
)
print(asyncio.run(run).text())
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def replay_peak_rss(root: Path, cap: int) -> tuple[str, int]:
    """The replay's summary and its peak resident set, in bytes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DETECTOR_"))}
    done = subprocess.run(
        [sys.executable, "-c", _REPLAY_AND_MEASURE, str(root), str(cap)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    summary, _, peak = done.stdout.rstrip().rpartition("\n")
    return summary, int(peak) * 1024


def gzip_bomb(path: Path, inflated: int) -> None:
    """A valid trail file padded with ``inflated`` bytes of whitespace, as gzip members of
    16 MiB each (a member of spaces compresses ~1000:1)."""
    piece = 16 << 20
    member = gzip.compress(b" " * piece, compresslevel=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write(gzip.compress(b'{"Records": ['))
        for _ in range(inflated // piece):
            out.write(member)
        out.write(gzip.compress(b"]}"))
    assert zlib.MAX_WBITS  # the members are plain gzip: any reader inflates them


def test_a_gzip_bomb_fails_alone_within_twice_the_cap(tmp_path: Path) -> None:
    cap = 64 << 20
    root = tmp_path / "archive"
    good_file(root, "good", "g-1", "g-2")
    _, baseline = replay_peak_rss(root, cap)
    bomb = root / trail_key(DELIVERED, "bomb")
    gzip_bomb(bomb, 1 << 30)
    assert bomb.stat().st_size < 2 << 20
    summary, with_bomb = replay_peak_rss(root, cap)
    assert "replayed 2 events" in summary  # the good file of the same archive
    assert "files: 1 read, 1 failed" in summary
    assert "_bomb.json.gz: field '<file>': larger than 67,108,864 bytes decompressed" in summary
    assert with_bomb - baseline < 2 * cap, (baseline, with_bomb)


def test_a_file_over_the_cap_fails_naming_it_in_detector_replay(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    good_file(root, "good", "g-1")
    gzip_bomb(root / trail_key(DELIVERED, "padded"), 32 << 20)  # valid JSON, padded
    ran, _ = replay(root, tmp_path, "--max-file-bytes", str(16 << 20))
    assert ran.code == 1  # 1 of 2 files failed: over the default --max-bad of 1%
    assert "replayed 1 events" in ran.stdout
    assert "_padded.json.gz: field '<file>': larger than 16,777,216 bytes" in ran.stdout
