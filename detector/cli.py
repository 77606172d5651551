"""The ``detector`` command: thin wiring from flags to the packages that do the work.

Imports: the standard library and the detector's entry-point modules.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from detector.errors import DetectorError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detector", description="CloudTrail anomaly detector")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the main job on the embedded default")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="working folder")
    demo.add_argument("--seed", type=int, default=7)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from detector.demo import DemoConfig, run_demo

            return run_demo(DemoConfig(out=args.out, seed=args.seed))
    except DetectorError as err:
        print(f"detector: error: {err}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
