"""Benchmark of the full replay: events/s and peak RSS of ``detector.replay.replay``.

    python -m bench.replay [--records 1000000] [--cache /tmp/detector-bench/replay-read]
                           [--repeats 2] [--skip-s3] [--skip-duckdb] [--profile]

The full replay is what ``detector replay`` runs: :func:`detector.replay.replay` over a
:class:`LocalFolderSource` (or an :class:`S3Source`) into ``Pipeline(load_artifact(
DEFAULT_MODEL_DIR))`` with a :class:`MemoryFindingSink`, so parse + features + scoring +
detections + findings. The archives are :mod:`bench.replay_read`'s (generated once with
:mod:`detector.synthetic` at 250,000 events a day and cached under ``--cache``; the same
cache, so one benchmark reuses the other's): one of ``--records`` events and one a quarter as
long (same daily volume, a quarter of the days).

Each measurement runs in its own subprocess (``python -m bench.replay --measure ...``) and
reports its own peak RSS and CPU time, its decode worker processes' included: replay decodes in
a process pool (:func:`detector.archive.decode_process_pool`), whose workers are children of
multiprocessing's forkserver, so the child stops and waits for the forkserver after the replay
(:func:`bench.replay_read.stop_forkserver`) to count their CPU time, and samples the RSS of its
whole process tree while it runs (:class:`bench.replay_read.TreeRssSampler`). The rows:

- ``imports + model, no events``: the child imports the detector and loads the model, then
  stops: the fixed part of every replay's RSS;
- ``replay, folder``: the full replay of the long archive, ``--repeats`` times, interleaved
  with DuckDB's rows so that both see the same machine load;
- ``DuckDB, folder``: :func:`bench.replay_read.measure_duckdb`, DuckDB's fast form reading the
  same ``.json.gz`` files into the same columns (``read_json_objects`` + ``json_transform`` +
  ``unnest`` into a DuckDB table): a reading-only reference, no features nor scoring;
- ``replay, folder, 1/4 as long``: the full replay of the short archive;
- ``replay, moto S3, 1/4 as long``: the same archive uploaded (aiobotocore, concurrent puts) to
  a moto ``ThreadedMotoServer`` on 127.0.0.1 in this (parent) process, replayed through
  ``S3Source.from_url("s3://bench-trail/AWSLogs/<org>", endpoint_url=...)`` opened with
  ``async with``. moto answers every GET in Python, in the parent, on the same CPUs.

Columns: ``s`` is the wall-clock time of the ``replay()`` call alone (imports and the model's
load excluded, reported as ``setup s``); ``events/s`` is events over that; ``events/cpu-s`` is
events over the CPU time of the child and its worker processes in the same span (all threads:
the decode workers, polars' pool, DuckDB's pool), which moves much less than wall-clock with
other load on the machine; ``RSS MB`` is the peak RSS of the child, or of the child and its
workers together when that sampled sum is higher (shared library pages count once per
process, so it overstates); ``findings`` is the number of findings with a digest of
their ids (same archive => same ids, whichever the source).

Then the verdicts:

- replay / DuckDB: the best replay rate over the best DuckDB rate, wall-clock (the issue's
  target: >= 0.75) and per CPU second;
- bounded memory: peak RSS of the long archive's replay (the largest of its runs) over the
  short one's (target: <= 1.3);
- S3 / folder: the moto S3 replay's rate over the folder replay's on the short archive, and
  whether their findings are identical.

``--profile`` also samples a replay of the short archive with py-spy (all threads, 100 Hz,
idle threads not counted) and prints the top functions by cumulative samples (stdlib frames,
asyncio's loop and threading's plumbing, left out) and the share of each thread.

/proc/loadavg is printed before and after: this is a 2-core machine others use too.
Not part of the test suite. Imports: the standard library, aiobotocore, the detector and
:mod:`bench.replay_read`; duckdb, moto and py-spy when present.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from bench.replay_read import (
    BUCKET,
    DEFAULT_CACHE,
    DEFAULT_RECORDS,
    ORG,
    RSS_LIMIT,
    TreeRssSampler,
    cpu_seconds,
    ensure_archive,
    peak_rss_mb,
    stop_forkserver,
    upload,
)
from bench.replay_read import measure as measure_reading

TARGET_RATIO: Final = 0.75  # replay events/s over DuckDB's, from the issue
S3_CREDENTIALS: Final = ("test", "test")

# --- measurements (each runs in a subprocess) --------------------------------------------------


def _replay_result(run: Callable[[Any, Any], Any]) -> dict[str, Any]:
    """Load the model, then time ``run(pipeline)`` (a coroutine of the replay)."""
    started = time.perf_counter()
    from detector.pipeline import Pipeline
    from detector.scoring import DEFAULT_MODEL_DIR, load_artifact
    from detector.sinks import MemoryFindingSink

    pipeline = Pipeline(load_artifact(DEFAULT_MODEL_DIR))
    sink = MemoryFindingSink()
    setup = time.perf_counter() - started
    started_cpu = cpu_seconds()
    started = time.perf_counter()
    with TreeRssSampler():
        summary = asyncio.run(run(pipeline, sink))
    seconds = time.perf_counter() - started
    stop_forkserver()  # the decode workers' CPU time and RSS count only once it is waited for
    ids = sorted(sink.finding_ids)
    return {
        "events": summary.events,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - started_cpu,
        "setup_seconds": setup,
        "findings": len(ids),
        "findings_digest": hashlib.sha256("\n".join(ids).encode()).hexdigest()[:10],
        "principals": summary.principals,
        "late_events": summary.late_events,
        "files_read": summary.files_read,
    }


def measure_folder(root: Path) -> dict[str, Any]:
    from detector.archive import LocalFolderSource
    from detector.replay import replay

    async def run(pipeline: Any, sink: Any) -> Any:
        return await replay(LocalFolderSource(root), str(root), pipeline, sink)

    return _replay_result(run)


def measure_s3(endpoint_url: str) -> dict[str, Any]:
    from detector.archive import S3Source
    from detector.aws import StaticCredentials
    from detector.replay import replay

    url = f"s3://{BUCKET}/AWSLogs/{ORG}"

    async def run(pipeline: Any, sink: Any) -> Any:
        async with S3Source.from_url(
            url,
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            credentials=StaticCredentials(*S3_CREDENTIALS),
        ) as source:
            return await replay(source, url, pipeline, sink)

    return _replay_result(run)


def measure_setup() -> dict[str, Any]:
    started = time.perf_counter()
    from detector.archive import LocalFolderSource  # noqa: F401
    from detector.pipeline import Pipeline
    from detector.replay import replay  # noqa: F401
    from detector.scoring import DEFAULT_MODEL_DIR, load_artifact

    Pipeline(load_artifact(DEFAULT_MODEL_DIR))
    return {"events": 0, "seconds": 0.0, "cpu_seconds": 0.0,
            "setup_seconds": time.perf_counter() - started}  # fmt: skip


def run_measurement(what: str, target: str) -> None:
    """Subprocess entry: measure one thing, print one JSON line."""
    measures: dict[str, Callable[[], dict[str, Any]]] = {
        "setup": measure_setup,
        "replay-folder": lambda: measure_folder(Path(target)),
        "replay-s3": lambda: measure_s3(target),
    }
    result = measures[what]()
    print(json.dumps({"what": what, **result, "peak_rss_mb": peak_rss_mb()}))


def child_command(what: str, target: str | Path) -> list[str]:
    return [sys.executable, "-m", "bench.replay", "--measure", what, "--target", str(target)]


def measure(what: str, target: str | Path = "") -> dict[str, Any]:
    out = subprocess.run(child_command(what, target), check=False, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"measuring {what} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure_duckdb(root: Path) -> dict[str, Any]:
    """bench.replay_read's DuckDB reference, in its own subprocess, in this table's terms."""
    result = measure_reading("duckdb", root)
    return {**result, "events": result["records"], "setup_seconds": 0.0}


# --- S3: moto in this process ------------------------------------------------------------------


@contextmanager
def moto_s3(root: Path) -> Iterator[tuple[str, float]]:
    """A ThreadedMotoServer on 127.0.0.1 (a free port) holding ``root``; yields the endpoint
    and the upload's seconds."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line a request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        started = time.perf_counter()
        asyncio.run(upload(root, endpoint))
        yield endpoint, time.perf_counter() - started
    finally:
        server.stop()


# --- profile: py-spy over a replay of the short archive ----------------------------------------

_STDLIB: Final = sysconfig.get_paths()["stdlib"]
_EVENT_LOOP: Final = str(Path(_STDLIB) / "asyncio" / "runners.py")


def _frame_name(frame: str) -> tuple[str, str]:
    """``"name (path:line)"`` -> (``"name (short path)"``, path)."""
    name, _, where = frame.rpartition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    short = path.split("site-packages/")[-1].split(str(Path(__file__).parents[1]) + "/")[-1]
    return f"{name} ({short})", path


def _plumbing(path: str) -> bool:
    """The standard library (asyncio's loop, threads, gzip), frozen modules, this benchmark."""
    return path.startswith((_STDLIB, "<frozen")) or path == __file__


def profile(root: Path, top: int) -> None:
    """py-spy over a replay of ``root``; only samples taken during ``replay()`` count: the
    main thread's under ``asyncio.run`` and every other thread's (they exist only then)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("\nprofile: py-spy not found (pip install py-spy): skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "replay.txt"
        command = [py_spy, "record", "--rate", "100", "--threads", "--full-filenames",
                   "--format", "raw", "--output", str(raw), "--",
                   *child_command("replay-folder", root)]  # fmt: skip
        out = subprocess.run(command, check=False, capture_output=True, text=True)
        if out.returncode != 0 or not raw.exists():
            print(f"\nprofile: py-spy failed: {out.stderr[-1000:]}")
            return
        lines = raw.read_text().splitlines()
    cumulative: Counter[str] = Counter()
    own: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for row in lines:
        stack, _, count_text = row.rpartition(" ")
        count = int(count_text)
        thread, *frames = stack.split(";")
        _, _, thread_name = thread.partition(": ")
        thread_name = thread_name.rstrip("_0123456789") or "MainThread"
        if thread_name == "MainThread" and not any(_EVENT_LOOP in f for f in frames):
            continue  # imports, the model's load
        total += count
        threads[thread_name] += count
        names = [_frame_name(f) for f in frames]
        cumulative.update(dict.fromkeys({n for n, path in names if not _plumbing(path)}, count))
        if names:
            own[names[-1][0]] += count
    if not total:
        print("\nprofile: no samples")
        return
    print(f"\nprofile: py-spy at 100 Hz, {total:,} samples of busy threads during replay() "
          f"({root.name}); by thread:")  # fmt: skip
    print("  " + ", ".join(f"{name} {n / total:.0%}" for name, n in threads.most_common()))
    print(f"top {top} by cumulative samples (stdlib and benchmark frames left out):")
    for name, count in cumulative.most_common(top):
        print(f"  {count / total:>5.1%}  {name}")
    print(f"top {top} by own samples (the innermost Python frame):")
    for name, count in own.most_common(top):
        print(f"  {count / total:>5.1%}  {name}")


# --- report ------------------------------------------------------------------------------------


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def rate(result: dict[str, Any]) -> float:
    return float(result["events"]) / max(float(result["seconds"]), 1e-9)


def cpu_rate(result: dict[str, Any]) -> float:
    return float(result["events"]) / max(float(result["cpu_seconds"]), 1e-9)


HEADER: Final = (
    f"{'measurement':<38} {'events':>9} {'setup s':>7} {'s':>6} {'events/s':>9}"
    f" {'events/cpu-s':>12} {'RSS MB':>7}  findings"
)


def line(result: dict[str, Any], label: str) -> str:
    events = result["events"]
    findings = (
        f"{result['findings']} ({result['findings_digest']})" if "findings" in result else "-"
    )
    rates = f"{rate(result):>9,.0f} {cpu_rate(result):>12,.0f}" if events else f"{'-':>9} {'-':>12}"
    return (
        f"{label:<38} {events:>9,} {result['setup_seconds']:>7.1f} {result['seconds']:>6.1f}"
        f" {rates} {result['peak_rss_mb']:>7,.0f}  {findings}"
    )


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--repeats", type=int, default=2, help="runs of the long archive")
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--skip-duckdb", action="store_true")
    parser.add_argument("--profile", action="store_true", help="py-spy over the short replay")
    parser.add_argument("--top", type=int, default=10, help="functions shown by --profile")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        run_measurement(args.measure, args.target)
        return
    long = ensure_archive(args.cache, args.records)
    short = ensure_archive(args.cache, args.records // 4)
    if not args.skip_duckdb:
        try:
            import duckdb  # noqa: F401
        except ImportError:
            print("duckdb: not installed (pip install duckdb): skipped")
            args.skip_duckdb = True
    started = time.perf_counter()
    print(f"\ncpus: {os.cpu_count()}; /proc/loadavg before: {loadavg()}")
    print(HEADER)
    print(line(measure("setup"), "imports + model, no events"), flush=True)
    replays: list[dict[str, Any]] = []
    duckdbs: list[dict[str, Any]] = []
    for _ in range(max(args.repeats, 1)):
        replays.append(measure("replay-folder", long))
        print(line(replays[-1], "replay, folder"), flush=True)
        if not args.skip_duckdb:
            duckdbs.append(measure_duckdb(long))
            print(line(duckdbs[-1], "DuckDB, folder (reading only)"), flush=True)
    short_result = measure("replay-folder", short)
    print(line(short_result, "replay, folder, 1/4 as long"), flush=True)
    s3_result = None
    if not args.skip_s3:
        with moto_s3(short) as (endpoint, upload_seconds):
            s3_result = measure("replay-s3", endpoint)
        print(line(s3_result, "replay, moto S3, 1/4 as long"), flush=True)
        print(f"(uploading the short archive to moto took {upload_seconds:.0f} s, untimed)")
    print(f"/proc/loadavg after: {loadavg()}; {time.perf_counter() - started:.0f} s in all\n")

    best = max(replays, key=rate)
    if duckdbs:
        best_duckdb = max(duckdbs, key=rate)
        ratio = rate(best) / rate(best_duckdb)
        cpu_ratio = cpu_rate(best) / cpu_rate(best_duckdb)
        print(f"replay / DuckDB, events/s (best of each): {ratio:.2f} "
              f"(target >= {TARGET_RATIO}): {verdict(ratio >= TARGET_RATIO)}; "
              f"per CPU second: {cpu_ratio:.2f}")  # fmt: skip
    rss_ratio = max(r["peak_rss_mb"] for r in replays) / short_result["peak_rss_mb"]
    print(f"peak RSS, 4x longer archive / archive: {rss_ratio:.2f} "
          f"(target <= {RSS_LIMIT}): {verdict(rss_ratio <= RSS_LIMIT)}")  # fmt: skip
    if s3_result is not None:
        same = s3_result["findings_digest"] == short_result["findings_digest"]
        print(f"moto S3 / folder, events/s on the short archive: "
              f"{rate(s3_result) / rate(short_result):.2f}; "
              f"findings identical: {'yes' if same else 'NO'}")  # fmt: skip
    digests = {r["findings_digest"] for r in replays}
    if len(digests) > 1:
        print(f"WARNING: the long archive's replays gave different findings: {digests}")
    if args.profile:
        profile(short, args.top)


if __name__ == "__main__":
    main()
