"""Benchmark of the feature step: ``python -m bench.features [--events N] [--principals P]``.

Builds an events frame directly with numpy/polars (realistic cardinalities: ~2k principals
with a skewed activity, ~5k public IPs, 30 event names over 8 services, 3 regions, a day of
event time), then, each in its own subprocess so peak RSS is that measurement's alone:

1. ``bare``: ``group_by(["principal_key", window]).len()`` over the events frame;
2. ``features``: ``update(empty_state(), events)`` + ``flush`` (every window closes);
3. ``profiles``: profile memory for 100,000 principals (estimated_size / principals).

The figures: rows/s of each, the ratio features/bare (target <= 5x), peak RSS, and bytes of
profile per principal (target < 4 KiB). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
import polars as pl

from detector.events import EVENT_SCHEMA
from detector.features import FeatureConfig, empty_state, flush, update

DAY_MS = 86_400_000
T0_MS = 1_709_510_400_000  # 2024-03-04T00:00:00Z, a Monday
SERVICES = ("iam", "sts", "kms", "s3", "ec2", "sqs", "secretsmanager", "lambda")
NAMES = tuple(
    f"{s}:{verb}{i}"
    for i, (s, verb) in enumerate(
        (SERVICES[i % len(SERVICES)], ("Get", "List", "Describe", "Put", "Decrypt")[i % 5])
        for i in range(30)
    )
)
AGENTS = (
    "aws-cli/2.15.0 Python/3.11.6",
    "Boto3/1.34.0 md/Botocore#1.34.0",
    "aws-sdk-java/1.12.500 Linux/5.10",
    "APN/1.0 HashiCorp/1.0 Terraform/1.5.7",
    "Mozilla/5.0 (X11; Linux x86_64)",
)


def synthetic_events(n: int, principals: int, ips: int, seed: int = 7) -> pl.DataFrame:
    """An events frame in :data:`EVENT_SCHEMA` with realistic cardinalities."""
    rng = np.random.default_rng(seed)
    who = (rng.zipf(1.2, n) - 1) % principals  # a few busy workloads, a long tail of people
    # Each principal sticks to a handful of IPs, names, agents, a home region.
    ip = (who * 7 + rng.integers(0, 3, n)) % ips
    name = (who * 3 + rng.integers(0, 6, n)) % len(NAMES)
    region = np.where(rng.random(n) < 0.9, who % 3, rng.integers(0, 3, n))
    times = T0_MS + rng.integers(0, DAY_MS, n)
    keys = np.array([f"arn:aws:iam::123456789012:role/app-{i:05d}" for i in range(principals)])
    ip_text = np.array([f"198.{51 + i // 65536}.{(i // 256) % 256}.{i % 256}" for i in range(ips)])
    services = np.array([f"{s.split(':')[0]}.amazonaws.com" for s in NAMES])
    event_names = np.array([s.split(":")[1] for s in NAMES])
    regions = np.array(["us-east-1", "eu-west-1", "ap-southeast-2"])
    agents = np.array(AGENTS)
    vpce = rng.random(n) < 0.3
    frame = pl.DataFrame(
        {
            "event_id": pl.int_range(0, n, eager=True).cast(pl.String),
            "event_time": pl.Series(times).cast(pl.Datetime("ms", "UTC")),
            "account_id": "123456789012",
            "recipient_account_id": "123456789012",
            "region": regions[region],
            "event_source": services[name],
            "event_name": event_names[name],
            "read_only": rng.random(n) < 0.8,
            "event_type": "AwsApiCall",
            "denied": rng.random(n) < 0.02,
            "vpce": vpce,
            "principal_key": keys[who],
            "principal_type": "AssumedRole",
            "principal_arn": keys[who],
            "source_ip": ip_text[ip],
            "source_ip_kind": pl.Series(["public_ipv4"] * n),
            "source_ip_address": ip_text[ip],
            "user_agent": agents[who % len(agents)],
            "tls_version": np.where(rng.random(n) < 0.97, "TLSv1.3", "TLSv1.2"),
        }
    )
    frame = frame.with_columns(
        pl.when("denied").then(pl.lit("AccessDenied")).alias("error_code"),
        pl.when("vpce").then(pl.lit("vpce-0abc")).alias("vpc_endpoint_id"),
        pl.when("vpce").then(pl.lit("123456789012")).alias("vpc_endpoint_account_id"),
    )
    missing = [
        pl.lit(None, dtype).alias(c) for c, dtype in EVENT_SCHEMA.items() if c not in frame.columns
    ]
    return frame.with_columns(missing).select(
        pl.col(c).cast(dtype) for c, dtype in EVENT_SCHEMA.items()
    )


def _peak_rss_bytes() -> int:
    # ru_maxrss is KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _measure(kind: str, n: int, principals: int, repeats: int) -> dict[str, Any]:
    config = FeatureConfig()
    events = synthetic_events(n, principals, ips=max(5000, principals * 2))
    window = (pl.col("event_time").cast(pl.Int64) // config.window_ms).alias("window")
    times = []
    result: dict[str, Any] = {"kind": kind, "events": n}
    for _ in range(repeats):
        start = time.perf_counter()
        if kind == "bare":
            rows = events.group_by(["principal_key", window]).len().height
        else:
            state, first, _ = update(empty_state(), events, config)
            state, rest, _ = flush(state, config)
            rows = first.height + rest.height
            result["principals"] = state.profiles.principals.height
            result["profile_bytes"] = state.profiles.estimated_size()
            result["profile_items"] = state.profiles.items.height
        times.append(time.perf_counter() - start)
    result |= {"seconds": min(times), "windows": rows, "peak_rss": _peak_rss_bytes()}
    return result


def _in_subprocess(kind: str, n: int, principals: int, repeats: int) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.features", "--one", kind, "--events", str(n)]
    args += ["--principals", str(principals), "--repeats", str(repeats)]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--principals", type=int, default=2_000)
    parser.add_argument("--profile-principals", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", choices=["bare", "features"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_measure(args.one, args.events, args.principals, args.repeats)))
        return
    bare = _in_subprocess("bare", args.events, args.principals, args.repeats)
    full = _in_subprocess("features", args.events, args.principals, args.repeats)
    # 100k principals, ~12 events each, one run: the profile is what is measured.
    prof = _in_subprocess("features", args.profile_principals * 12, args.profile_principals, 1)
    mib = 1024 * 1024
    print(f"events: {args.events:,}  principals: {args.principals:,}  (synthetic, one day)")
    for label, r in (("bare group_by.len", bare), ("features update+flush", full)):
        print(
            f"  {label:<22} {r['seconds']:7.3f} s  {r['events'] / r['seconds']:>12,.0f} rows/s"
            f"  peak RSS {r['peak_rss'] / mib:7.0f} MiB  windows {r['windows']:,}"
        )
    print(f"  ratio features / bare: {full['seconds'] / bare['seconds']:.1f}x (target <= 5x)")
    per = prof["profile_bytes"] / prof["principals"]
    print(
        f"profiles: {prof['principals']:,} principals, {prof['profile_items']:,} items, "
        f"{prof['profile_bytes'] / mib:.1f} MiB -> {per:,.0f} B/principal (target < 4096)"
    )


if __name__ == "__main__":
    main()
