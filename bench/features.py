"""Benchmark of the feature step: ``python -m bench.features [--events N] [--repeats R]``.

Events come from the project's generator (:mod:`detector.synthetic`, a seeded organisation with
realistic cardinalities: a few busy workloads, people, pipelines, AWS services), parsed once by
:func:`detector.events.records_to_events` and cached as Parquet under ``--cache`` (default
``/tmp``). The default organisation is larger than the generator's default (~900 principals
instead of ~60) so that windows are many, as in a real account; ``--people`` etc. change it.

Each measurement runs in its own subprocess, so its peak RSS is its own:

1. ``bare``: ``group_by(["principal_key", window]).len()`` over the events frame;
2. ``features``: ``update(empty_state(), events)`` + ``flush`` (every window closes), with the
   bare group-by timed again in the same process between repeats, so the ratio compares two
   timings taken under the same load (target <= 5x);
3. ``stream``: consecutive time-ordered slices of 1k, 10k and 100k events fed to ``update``
   (a micro-batch stream), then ``flush``: events/s and ms per call; once for the main
   account, once for a busier one (``--busy-events-per-day``), where a batch spans less event
   time and so fewer calls close windows (windows of all principals close together, once per
   window length of event time);
4. the profile memory per principal after the whole frame (``Profiles.estimated_size``).

Timings are the best of ``--repeats``; the machine's load average is printed with them, because
on a shared machine only the best-of figures and the ratio are comparable between runs.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

from detector.events import records_to_events
from detector.features import FeatureConfig, empty_state, flush, update
from detector.synthetic import SyntheticConfig, iter_records

_PARSE_CHUNK = 20_000  # records parsed at a time: bounds the generator's memory
_DATA_VERSION = 1  # bump when the way the cached frame is made changes


def _load() -> str:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return f"{one} {five} {fifteen} on {os.cpu_count()} CPUs"


def _peak_rss_bytes() -> int:
    # ru_maxrss is KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _synthetic_config(args: argparse.Namespace) -> SyntheticConfig:
    base = replace(
        SyntheticConfig(),
        people=args.people,
        apps=args.apps,
        pipelines=args.pipelines,
        iam_users=args.iam_users,
    )
    return base.with_events_per_day(args.events_per_day)


def _cache_path(args: argparse.Namespace) -> Path:
    name = (
        f"bench-features-v{_DATA_VERSION}-n{args.events}-d{args.events_per_day}"
        f"-p{args.people}-a{args.apps}-l{args.pipelines}-u{args.iam_users}-s{args.seed}.parquet"
    )
    return Path(args.cache) / name


def _make_events(args: argparse.Namespace) -> dict[str, Any]:
    """Generate, parse and cache the events frame (in event-time order, as generated)."""
    path = _cache_path(args)
    if not path.exists():
        records = iter_records(_synthetic_config(args), seed=args.seed)
        frames, got = [], 0
        while got < args.events:
            chunk = list(itertools.islice(records, min(_PARSE_CHUNK, args.events - got)))
            if not chunk:
                break
            frames.append(records_to_events(chunk, origin="bench").events)
            got += frames[-1].height
        tmp = path.with_suffix(".tmp")
        pl.concat(frames).write_parquet(tmp)
        tmp.replace(path)
    events = pl.scan_parquet(path).select(
        pl.len().alias("events"),
        pl.col("principal_key").n_unique().alias("principals"),
        pl.col("event_time").min().dt.to_string().alias("first"),
        pl.col("event_time").max().dt.to_string().alias("last"),
    )
    return dict(events.collect().row(0, named=True)) | {"path": str(path)}


def _events(args: argparse.Namespace) -> pl.DataFrame:
    # One contiguous chunk: polars group-bys on a many-chunk frame are slower, which would
    # flatter the ratio.
    return pl.read_parquet(_cache_path(args)).rechunk()


def _bare(events: pl.DataFrame, config: FeatureConfig) -> float:
    window = (pl.col("event_time").cast(pl.Int64) // config.window_ms).alias("window")
    start = time.perf_counter()
    events.group_by(["principal_key", window]).len()
    return time.perf_counter() - start


def _measure_bare(args: argparse.Namespace) -> dict[str, Any]:
    events, config = _events(args), FeatureConfig()
    times = [_bare(events, config) for _ in range(args.repeats)]
    return {"seconds": min(times), "peak_rss": _peak_rss_bytes()}


def _measure_features(args: argparse.Namespace) -> dict[str, Any]:
    events, config = _events(args), FeatureConfig()
    times, bare_times, result = [], [], {}
    for _ in range(args.repeats):
        bare_times.append(_bare(events, config))
        start = time.perf_counter()
        state, first, _ = update(empty_state(), events, config)
        state, rest, _ = flush(state, config)
        times.append(time.perf_counter() - start)
        profiles = state.profiles
        result = {
            "windows": first.height + rest.height,
            "principals": profiles.principals.height,
            "profile_items": profiles.item_codes.height,
            "profile_values": profiles.values.height,
            "profile_bytes": profiles.estimated_size(),
            "principal_rows_bytes": profiles.principals.estimated_size(),
            "item_codes_bytes": profiles.item_codes.estimated_size(),
            "values_bytes": profiles.values.estimated_size(),
        }
    return result | {
        "seconds": min(times),
        "bare_seconds": min(bare_times),
        "peak_rss": _peak_rss_bytes(),
    }


def _measure_stream(args: argparse.Namespace) -> dict[str, Any]:
    """``update`` on consecutive slices of ``args.batch`` events, then ``flush``."""
    config = FeatureConfig()
    events = _events(args).head(args.stream_events).sort("event_time", maintain_order=True)
    batches = [events.slice(start, args.batch) for start in range(0, events.height, args.batch)]
    best: dict[str, Any] = {}
    for _ in range(args.repeats):
        state, closing_calls, slowest = empty_state(), 0, 0.0
        start = time.perf_counter()
        for batch in batches:
            before = time.perf_counter()
            state, rows, _ = update(state, batch, config)
            slowest = max(slowest, time.perf_counter() - before)
            closing_calls += rows.height > 0
        updates = time.perf_counter() - start
        state, _, _ = flush(state, config)
        total = time.perf_counter() - start
        if not best or updates < best["update_seconds"]:
            best = {
                "update_seconds": updates,
                "total_seconds": total,
                "slowest_call": slowest,
                "closing_calls": closing_calls,
            }
    return best | {
        "batch": args.batch,
        "events": events.height,
        "calls": len(batches),
        "peak_rss": _peak_rss_bytes(),
    }


_MEASURES = {
    "data": _make_events,
    "bare": _measure_bare,
    "features": _measure_features,
    "stream": _measure_stream,
}


def _in_subprocess(kind: str, argv: list[str], *extra: str) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.features", *argv, "--one", kind, *extra]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--people", type=int, default=400)
    parser.add_argument("--apps", type=int, default=60)
    parser.add_argument("--pipelines", type=int, default=20)
    parser.add_argument("--iam-users", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", default="1000,10000,100000", help="micro-batch sizes")
    parser.add_argument("--stream-events", type=int, default=300_000)
    parser.add_argument(
        "--busy-events-per-day",
        type=int,
        default=20_000_000,
        help="also stream a busier account's events (0: skip)",
    )
    parser.add_argument("--cache", default="/tmp")
    parser.add_argument("--one", choices=sorted(_MEASURES), help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1000, help=argparse.SUPPRESS)
    return parser


def _print_streams(args: argparse.Namespace, argv: list[str], per_day: int) -> None:
    mib = 1024 * 1024
    print(
        f"micro-batch stream ({args.stream_events:,} events, time-ordered slices, "
        f"{per_day:,} events/day):"
    )
    for size in (int(s) for s in args.batches.split(",")):
        r = _in_subprocess("stream", argv, "--batch", str(size))
        print(
            f"  {size:>7,} events/call  {r['events'] / r['update_seconds']:>10,.0f} events/s  "
            f"{r['update_seconds'] / r['calls'] * 1000:7.2f} ms/call  "
            f"slowest {r['slowest_call'] * 1000:6.1f} ms  "
            f"{r['closing_calls']}/{r['calls']} calls closed windows  "
            f"(with flush {r['events'] / r['total_seconds']:,.0f} events/s)  "
            f"peak RSS {r['peak_rss'] / mib:.0f} MiB"
        )


def main() -> None:
    args = _parser().parse_args()
    if args.one:
        print(json.dumps(_MEASURES[args.one](args)))
        return
    argv = sys.argv[1:]
    mib = 1024 * 1024
    data = _in_subprocess("data", argv)
    print(
        f"events: {data['events']:,}  principals: {data['principals']:,}  "
        f"({data['first']} .. {data['last']}, cached in {data['path']})"
    )
    print(f"load before: {_load()}")
    bare = _in_subprocess("bare", argv)
    full = _in_subprocess("features", argv)
    print(f"full step, best of {args.repeats}:")
    print(
        f"  bare group_by.len        {bare['seconds']:7.3f} s  "
        f"{data['events'] / bare['seconds']:>12,.0f} events/s  "
        f"peak RSS {bare['peak_rss'] / mib:6.0f} MiB"
    )
    print(
        f"  update + flush           {full['seconds']:7.3f} s  "
        f"{data['events'] / full['seconds']:>12,.0f} events/s  "
        f"peak RSS {full['peak_rss'] / mib:6.0f} MiB  windows {full['windows']:,}"
    )
    print(
        f"  ratio features / bare: {full['seconds'] / full['bare_seconds']:.1f}x "
        f"(bare {full['bare_seconds']:.3f} s timed in the same process; target <= 5x)"
    )
    _print_streams(args, argv, args.events_per_day)
    if args.busy_events_per_day:
        # A busier account: a batch spans less event time, so fewer calls close windows.
        busy = [*argv, "--events-per-day", str(args.busy_events_per_day)]
        _in_subprocess("data", [*busy, "--events", str(args.stream_events)])
        _print_streams(args, [*busy, "--events", str(args.stream_events)], args.busy_events_per_day)
    per = full["profile_bytes"] / max(full["principals"], 1)
    print(
        f"profiles after the run: {full['principals']:,} principals, "
        f"{full['profile_items']:,} items, {full['profile_values']:,} distinct values, "
        f"{full['profile_bytes'] / mib:.1f} MiB -> {per:,.0f} B/principal (target < 4096): "
        f"principal rows {full['principal_rows_bytes'] / max(full['principals'], 1):,.0f}, "
        f"item codes {full['item_codes_bytes'] / max(full['principals'], 1):,.0f}, "
        f"value texts {full['values_bytes'] / max(full['principals'], 1):,.0f}"
    )
    print(f"load after: {_load()}")


if __name__ == "__main__":
    main()
