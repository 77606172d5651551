"""Benchmark of replay's reading side: records/s and peak RSS of ``read_events``.

    python -m bench.replay_read [--records 1000000] [--cache /tmp/detector-bench] [--skip-s3]

Generates (once, cached) synthetic archives in CloudTrail's layout with
:mod:`detector.synthetic`: one of ``--records`` records and one a quarter as long (same traffic
rate, a quarter of the days). Then each measurement runs in its own subprocess, so that its
peak RSS (``ru_maxrss``) is its own:

- reference floors on the same files: gzip alone; gzip + orjson; ``archive_to_events`` file by
  file in one thread (what the service's parser costs with no pipeline around it);
- ``read_events`` from the local folder: decoding in threads (the default), with and without
  :func:`detector.archive.replay_gc`, and in a process pool;
- DuckDB's fast form over the same ``.json.gz`` files into the same columns
  (``read_json_objects`` + ``json_transform`` + ``unnest``, into a DuckDB table);
  DuckDB is a bench-only dependency (``pip install duckdb``), skipped when absent;
- ``read_events`` from S3: a moto server in another process, the short archive uploaded to it;
- bounded memory: peak RSS of ``read_events`` over the short and the long archive must be
  within 1.3x of each other.

Not part of the test suite. Imports: the standard library, orjson, polars, aiobotocore and
the detector; duckdb and moto when present.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import itertools
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import orjson

from detector.archive import (
    ArchiveSource,
    LocalFolderSource,
    S3Source,
    decode_process_pool,
    read_events,
    replay_gc,
)
from detector.aws import StaticCredentials
from detector.events import EVENT_COLUMNS, archive_to_events

DEFAULT_RECORDS: Final = 1_000_000
DEFAULT_CACHE: Final = Path("/tmp/detector-bench/replay-read")
EVENTS_PER_DAY: Final = 250_000
ORG: Final = "o-benchorg0001"
SEED: Final = 7
BUCKET: Final = "bench-trail"
RSS_LIMIT: Final = 1.3
CREDENTIALS: Final = StaticCredentials("bench", "bench")

# --- the archives ------------------------------------------------------------------------------


def archive_dir(cache: Path, records: int) -> Path:
    return cache / f"archive-{records}-seed{SEED}"


def ensure_archive(cache: Path, records: int) -> Path:
    """Generate the archive once; a ``.done`` marker says it is complete."""
    root = archive_dir(cache, records)
    if (root / ".done").exists():
        return root
    from detector.synthetic import SyntheticConfig, iter_records, write_archive

    print(f"generating {records:,} records into {root} (once) ...", flush=True)
    started = time.perf_counter()
    config = SyntheticConfig().with_events_per_day(EVENTS_PER_DAY)
    summary = write_archive(
        itertools.islice(iter_records(config, SEED), records), root, organization_id=ORG
    )
    (root / ".done").write_text(json.dumps({"records": summary.records}))
    print(f"  {summary.records:,} records, {len(summary.log_files):,} files, "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    return root


def log_files(root: Path) -> list[tuple[str, bytes]]:
    paths = sorted(p for p in root.rglob("*.json.gz") if "/CloudTrail/" in p.as_posix())
    return [(p.relative_to(root).as_posix(), p.read_bytes()) for p in paths]


# --- measurements (each runs in a subprocess) --------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak RSS plus its largest waited-for descendant's (see
    :func:`stop_forkserver`), or the process tree's sampled peak (:class:`TreeRssSampler`) when
    that is higher."""
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max((self_kb + children_kb) / 1024, TreeRssSampler.peak_mb)


def cpu_seconds() -> float:
    """CPU time of this process and of its waited-for descendants (all threads)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def stop_forkserver() -> None:
    """Stop and wait for multiprocessing's forkserver, if this process started one.

    A process pool's workers are the forkserver's children, not ours: their CPU time and peak
    RSS reach :func:`cpu_seconds` and :func:`peak_rss_mb` (``RUSAGE_CHILDREN``) only once the
    forkserver, which waited for them, is itself waited for. (A private API of
    ``multiprocessing``; the measurement says so when it is missing.)
    """
    from multiprocessing import forkserver

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
    if stop is None:
        print("warning: cannot stop the forkserver: worker CPU not counted", file=sys.stderr)
        return
    stop()


def _tree_rss_kb(root: int) -> int:
    """Resident memory of ``root`` and all its descendants now, in KiB (from /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            pid = int(entry.name)
            parents[pid] = int(fields[1])
            rss[pid] = int(fields[21]) * page_kb
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(rss.get(pid, 0) for pid in tree)


class TreeRssSampler:
    """Samples the RSS of this process and its descendants (a process pool's workers are
    the forkserver's children) every ``interval`` seconds while in the ``with`` block; the
    highest sum is :attr:`peak_mb`. Shared pages (polars' library in every worker) count in
    each process, so this overstates, never understates, the tree's peak."""

    peak_mb: float = 0.0

    def __init__(self, interval: float = 0.05) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self._interval):
            kb = _tree_rss_kb(me)
            TreeRssSampler.peak_mb = max(TreeRssSampler.peak_mb, kb / 1024)

    def __enter__(self) -> TreeRssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure_floor(root: Path, stage: str) -> int:
    """Records through one stage, file by file (files are read into memory first)."""
    files = log_files(root)
    if stage == "gzip":
        for _, data in files:
            gzip.decompress(data)
        return int(json.loads((root / ".done").read_text())["records"])
    if stage == "gzip+orjson":
        return sum(len(orjson.loads(gzip.decompress(data))["Records"]) for _, data in files)
    return sum(archive_to_events(data, key).events.height for key, data in files)


def measure_parse_with_replay_gc(root: Path) -> int:
    with replay_gc():
        return measure_floor(root, "parse")


async def drain(source: ArchiveSource, **options: Any) -> int:
    count = 0
    async with contextlib.aclosing(read_events(source, **options)) as chunks:
        async for chunk in chunks:
            count += chunk.events.height
    return count


def measure_read_events(root: Path, mode: str) -> int:
    source = LocalFolderSource(root)
    if mode == "processes":
        with TreeRssSampler(), replay_gc(), decode_process_pool() as pool:
            count = asyncio.run(drain(source, decode_executor=pool))
        stop_forkserver()
        return count
    if mode == "no-gc-tuning":
        return asyncio.run(drain(source))
    with replay_gc():
        return asyncio.run(drain(source))


def measure_s3(endpoint_url: str) -> int:
    async def run() -> int:
        async with S3Source(
            BUCKET, endpoint_url=endpoint_url, region_name="us-east-1", credentials=CREDENTIALS
        ) as source:
            return await drain(source)

    with replay_gc():
        return asyncio.run(run())


def _duckdb_structure() -> str:
    text, boolean = "VARCHAR", "BOOLEAN"
    structure = {
        "eventID": text, "eventTime": text, "eventVersion": text, "recipientAccountId": text,
        "awsRegion": text, "eventSource": text, "eventName": text, "readOnly": boolean,
        "eventType": text, "eventCategory": text, "managementEvent": boolean,
        "errorCode": text, "errorMessage": text, "sourceIPAddress": text, "userAgent": text,
        "vpcEndpointId": text, "vpcEndpointAccountId": text, "sharedEventID": text,
        "sessionCredentialFromConsole": text,
        "tlsDetails": {"tlsVersion": text, "cipherSuite": text},
        "userIdentity": {
            "type": text, "arn": text, "accountId": text, "principalId": text,
            "accessKeyId": text, "userName": text, "invokedBy": text,
            "sessionContext": {
                "sessionIssuer": {"arn": text, "userName": text},
                "sourceIdentity": text, "ec2RoleDelivery": text,
                "attributes": {"creationDate": text, "mfaAuthenticated": text},
            },
        },
        "resources": [{"ARN": text}],
        "requestParameters": "JSON", "responseElements": "JSON", "additionalEventData": "JSON",
    }  # fmt: skip
    return json.dumps(structure)


DUCKDB_SELECT: Final = """
    r.eventID AS event_id,
    strptime(r.eventTime, '%Y-%m-%dT%H:%M:%SZ') AS event_time,
    strptime(regexp_extract(filename, '_(\\d{8}T\\d{4}Z)_', 1), '%Y%m%dT%H%MZ') AS received_time,
    r.eventVersion AS event_version,
    coalesce(r.userIdentity.accountId, r.recipientAccountId) AS account_id,
    r.recipientAccountId AS recipient_account_id,
    r.awsRegion AS region, r.eventSource AS event_source, r.eventName AS event_name,
    r.readOnly AS read_only, r.eventType AS event_type, r.eventCategory AS event_category,
    r.managementEvent AS management_event, r.errorCode AS error_code,
    r.errorMessage AS error_message,
    coalesce(r.userIdentity.sessionContext.sessionIssuer.arn, r.userIdentity.arn) AS principal_key,
    r.userIdentity.type AS principal_type, r.userIdentity.arn AS principal_arn,
    r.userIdentity.principalId AS principal_id,
    r.userIdentity.sessionContext.sessionIssuer.arn AS session_issuer_arn,
    coalesce(r.userIdentity.userName, r.userIdentity.sessionContext.sessionIssuer.userName)
        AS session_name,
    r.userIdentity.sessionContext.sourceIdentity AS source_identity,
    r.userIdentity.accessKeyId AS access_key_id,
    r.userIdentity.sessionContext.attributes.mfaAuthenticated = 'true' AS mfa_authenticated,
    strptime(r.userIdentity.sessionContext.attributes.creationDate, '%Y-%m-%dT%H:%M:%SZ')
        AS session_created,
    r.userIdentity.sessionContext.ec2RoleDelivery AS ec2_role_delivery,
    r.sourceIPAddress AS source_ip,
    CASE WHEN r.sourceIPAddress LIKE '%amazonaws.com' THEN 'aws_service' ELSE 'public_ipv4' END
        AS source_ip_kind,
    r.sourceIPAddress AS source_ip_address,
    r.userAgent AS user_agent, r.vpcEndpointId AS vpc_endpoint_id,
    r.vpcEndpointAccountId AS vpc_endpoint_account_id,
    r.tlsDetails.tlsVersion AS tls_version, r.tlsDetails.cipherSuite AS tls_cipher,
    r.sessionCredentialFromConsole = 'true' AS console,
    r.userIdentity.invokedBy AS invoked_by, r.sharedEventID AS shared_event_id,
    CASE WHEN r.eventSource = 'kms.amazonaws.com' THEN r.resources[1].ARN END AS kms_key_arn,
    list_transform(r.resources, lambda x: x.ARN) AS resource_arns,
    r.requestParameters::VARCHAR AS request_parameters,
    r.responseElements::VARCHAR AS response_elements,
    r.additionalEventData::VARCHAR AS additional_event_data
"""


def measure_duckdb(root: Path) -> int:
    import duckdb

    glob = f"{root}/AWSLogs/*/*/CloudTrail/*/*/*/*/*.json.gz"
    query = f"""
        WITH files AS (
            SELECT filename, json FROM read_json_objects('{glob}', format = 'auto', filename = true)
        ), records AS (
            SELECT filename, unnest(json_transform(json -> '$.Records', '[{_duckdb_structure()}]')) AS r
            FROM files
        )
        SELECT {DUCKDB_SELECT} FROM records
    """
    connection = duckdb.connect()
    # Materialised in DuckDB's own columnar table (streaming out needs pyarrow, which the
    # project does not use), so its peak RSS holds the whole result, unlike read_events'.
    connection.execute(f"CREATE TABLE events AS {query}")
    columns = connection.execute("SELECT * FROM events LIMIT 0").description
    if columns is None or len(columns) != len(EVENT_COLUMNS):
        raise RuntimeError(f"DuckDB made {columns and len(columns)} columns")
    row = connection.execute("SELECT count(*) FROM events").fetchone()
    return int(row[0]) if row else 0


def run_measurement(what: str, target: str) -> None:
    """Subprocess entry: measure one thing, print one JSON line."""
    started_cpu = cpu_seconds()
    started = time.perf_counter()
    measures: dict[str, Callable[[], int]] = {
        "gzip": lambda: measure_floor(Path(target), "gzip"),
        "gzip+orjson": lambda: measure_floor(Path(target), "gzip+orjson"),
        "archive_to_events": lambda: measure_floor(Path(target), "parse"),
        "archive_to_events-gc": lambda: measure_parse_with_replay_gc(Path(target)),
        "read_events": lambda: measure_read_events(Path(target), "threads"),
        "read_events-no-gc-tuning": lambda: measure_read_events(Path(target), "no-gc-tuning"),
        "read_events-processes": lambda: measure_read_events(Path(target), "processes"),
        "duckdb": lambda: measure_duckdb(Path(target)),
        "read_events-s3": lambda: measure_s3(target),
    }
    records = measures[what]()
    seconds = time.perf_counter() - started
    print(json.dumps({
        "what": what, "records": records, "seconds": seconds,
        "cpu_seconds": cpu_seconds() - started_cpu, "peak_rss_mb": peak_rss_mb(),
    }))  # fmt: skip


def measure(what: str, target: str | Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.replay_read", "--measure", what, "--target", str(target)],
        check=False,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"measuring {what} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --- S3: a moto server in another process ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


async def upload(root: Path, endpoint_url: str) -> None:
    from aiobotocore.session import get_session

    async with get_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id=CREDENTIALS.access_key_id,
        aws_secret_access_key=CREDENTIALS.secret_access_key,
    ) as client:
        await client.create_bucket(Bucket=BUCKET)
        semaphore = asyncio.Semaphore(32)

        async def put(path: Path) -> None:
            async with semaphore:
                key = path.relative_to(root).as_posix()
                await client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())

        await asyncio.gather(*(put(p) for p in root.rglob("*.json.gz")))


# --- report ------------------------------------------------------------------------------------


def line(result: dict[str, Any], label: str) -> str:
    rate = result["records"] / result["seconds"]
    cpu_rate = result["records"] / max(result["cpu_seconds"], 1e-9)
    return (
        f"{label:<50} {result['records']:>10,} {rate:>10,.0f} {cpu_rate:>12,.0f}"
        f" {result['peak_rss_mb']:>9,.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        run_measurement(args.measure, args.target)
        return
    long = ensure_archive(args.cache, args.records)
    short = ensure_archive(args.cache, args.records // 4)
    print(f"\ncpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    print("(rec/cpu-s counts this process and its children, a process pool's workers too)")
    print(f"{'measurement':<50} {'records':>10} {'rec/s':>10} {'rec/cpu-s':>12} {'RSS MB':>9}")
    plan = [
        ("gzip", long, "gzip only"),
        ("gzip+orjson", long, "gzip + orjson"),
        ("archive_to_events", long, "archive_to_events, one thread, no pipeline"),
        ("archive_to_events-gc", long, "archive_to_events, one thread, replay_gc"),
        ("read_events", long, "read_events, folder (1 decode thread, replay_gc)"),
        ("read_events-no-gc-tuning", long, "read_events, folder, without replay_gc"),
        ("read_events-processes", long, "read_events, folder, decode_process_pool()"),
    ]
    results: dict[str, dict[str, Any]] = {}
    for what, root, label in plan:
        results[what] = measure(what, root)
        print(line(results[what], label), flush=True)
    try:
        import duckdb  # noqa: F401
    except ImportError:
        print("duckdb: not installed (pip install duckdb): skipped")
    else:
        print(line(measure("duckdb", long), "DuckDB read_json_objects+json_transform"))
    short_result = measure("read_events", short)
    print(line(short_result, "read_events, folder, archive 1/4 as long"), flush=True)
    if not args.skip_s3:
        with moto_s3() as endpoint:
            started = time.perf_counter()
            asyncio.run(upload(short, endpoint))
            print(f"(uploaded the short archive to moto in {time.perf_counter() - started:.0f} s)")
            print(line(measure("read_events-s3", endpoint), "read_events, moto S3, short archive"))
    ratio = results["read_events"]["peak_rss_mb"] / short_result["peak_rss_mb"]
    verdict = "OK" if ratio <= RSS_LIMIT else "FAIL"
    print(f"\npeak RSS, 4x longer archive / archive: {ratio:.2f} (limit {RSS_LIMIT}): {verdict}")


if __name__ == "__main__":
    main()
