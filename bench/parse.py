"""Parse throughput: bodies and archive files -> normalized events, beside bare ``orjson.loads``.

Run: ``python -m bench.parse [--events N]``. The figure is the ratio of our time to the
reference's on the same bytes in the same run (target: no more than 3x):

- envelopes: ``envelopes_to_events`` on micro-batches of SQS bodies, versus
  ``orjson.loads`` of each body;
- archive files: ``archive_to_events`` on gzipped ``{"Records": [...]}`` files, versus
  ``gzip.decompress`` + ``orjson.loads`` of the same files (both sides decompress).

Each side runs several times; the best time counts (least disturbed by the machine). Both
sides run with the garbage collector tuned as the service tunes it (:func:`tune_gc`): with
CPython's default thresholds, full collections over the decoded dicts cost up to 2x.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import itertools
import time
from collections.abc import Callable

import orjson

from detector.events import archive_to_events, envelopes_to_events
from detector.process import tune_gc
from detector.synthetic import SyntheticConfig, envelope, iter_records

REPEATS = 3
BATCH = 1000  # bodies per micro-batch, as the consumer builds them
RECORDS_PER_FILE = 2000


def best_seconds(run: Callable[[], object], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    tune_gc()
    config = SyntheticConfig().with_events_per_day(200_000)
    records = list(itertools.islice(iter_records(config, seed=7), args.events))
    n = len(records)
    bodies = [orjson.dumps(envelope(r, f"env-{i}")) for i, r in enumerate(records)]
    batches = [bodies[i : i + BATCH] for i in range(0, n, BATCH)]
    files = [
        gzip.compress(orjson.dumps({"Records": records[i : i + RECORDS_PER_FILE]}), 6)
        for i in range(0, n, RECORDS_PER_FILE)
    ]
    key = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/04/x.json.gz"
    del records

    # The reference decodes each micro-batch into a list it keeps, as any consumer must.
    def ref_bodies() -> None:
        for batch in batches:
            [orjson.loads(body) for body in batch]

    def our_bodies() -> None:
        for batch in batches:
            envelopes_to_events(batch)

    def ref_files() -> None:
        for data in files:
            orjson.loads(gzip.decompress(data))

    def our_files() -> None:
        for data in files:
            archive_to_events(data, key)

    rows = []
    for name, ref, ours in (
        ("envelopes (SQS bodies)", ref_bodies, our_bodies),
        ("archive files (.json.gz)", ref_files, our_files),
    ):
        t_ref = best_seconds(ref)
        t_ours = best_seconds(ours)
        rows.append((name, n / t_ref, n / t_ours, t_ours / t_ref))
    print(f"parse benchmark: {n:,} synthetic CloudTrail events, best of {REPEATS}")
    print(f"{'input':<26} {'orjson.loads ev/s':>18} {'detector ev/s':>14} {'ratio':>6}")
    for name, ref_rate, our_rate, ratio in rows:
        print(f"{name:<26} {ref_rate:>18,.0f} {our_rate:>14,.0f} {ratio:>5.2f}x")


if __name__ == "__main__":
    main()
