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


_MEASURE = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=False, capture_output=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_rss_kib(*args: str) -> int:
    """The largest resident set of ``detector ARGS`` and its worker processes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DETECTOR_"))}
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, sys.executable, "-m", "detector.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.strip())


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
    flags = ["--max-file-bytes", str(cap), "--max-bad", "100%"]
    baseline = peak_rss_kib("replay", str(root), "--out", str(tmp_path / "a.jsonl"), *flags)
    bomb = root / trail_key(DELIVERED, "bomb")
    gzip_bomb(bomb, 1 << 30)
    assert bomb.stat().st_size < 2 << 20
    ran, _ = replay(root, tmp_path, *flags)
    assert "replayed 2 events" in ran.stdout  # the good file of the same archive
    assert "larger than 67,108,864 bytes decompressed" in ran.stdout
    assert "bomb" in ran.stdout
    with_bomb = peak_rss_kib("replay", str(root), "--out", str(tmp_path / "b.jsonl"), *flags)
    assert (with_bomb - baseline) * 1024 < 2 * cap, (baseline, with_bomb)
