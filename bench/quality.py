"""The full quality evaluation on organisations of different shapes, reproducibly.

    python -m bench.quality [--out out/quality] [--shapes all] [--seeds 1,2] [--modes ...]

Runs :func:`detector.evaluation.evaluate_shapes` over the development shapes on the
development seeds and the held-back shapes on the held-back seeds (or what the flags say),
each from a cold start, in both modes (the shipped model untrained on the shape; a model
trained on the shape's clean first days), and writes ``quality.txt`` (the table, then the
wall-clock and CPU time of the run) and ``quality.json`` into ``--out``. The table is what
docs/quality.md shows. Held-back shapes and seeds are for reporting only: never tune against
them.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import orjson

from detector.commands import shape_names
from detector.evaluation import (
    MODES,
    ShapeResult,
    evaluate_shapes,
    shape_report_json,
    shape_report_text,
    shape_runs,
)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out/quality"))
    parser.add_argument("--shapes", help="comma-separated shapes, or dev, held-back, all")
    parser.add_argument("--seeds", type=lambda t: [int(p) for p in t.split(",") if p.strip()])
    parser.add_argument("--modes", type=lambda t: [p for p in t.split(",") if p.strip()])
    args = parser.parse_args(argv)
    runs = shape_runs(shape_names(args.shapes), args.seeds)
    started, cpu = time.monotonic(), _cpu_seconds()

    def progress(result: ShapeResult) -> None:
        print(
            f"{time.monotonic() - started:7.0f} s  {result.shape} seed {result.seed} "
            f"({result.mode}): recall {result.incident_recall:.2f}",
            file=sys.stderr,
            flush=True,
        )

    results = evaluate_shapes(runs, args.modes or MODES, on_result=progress)
    wall, cpu = time.monotonic() - started, _cpu_seconds() - cpu
    text = (
        shape_report_text(results)
        + f"\n\n{len(runs)} shape-seed runs x {len(args.modes or MODES)} modes: "
        + f"{wall / 60:.1f} min wall-clock, {cpu / 60:.1f} min CPU (this process)\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.txt").write_text(text)
    (args.out / "quality.json").write_bytes(
        orjson.dumps(shape_report_json(results), option=orjson.OPT_INDENT_2)
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
