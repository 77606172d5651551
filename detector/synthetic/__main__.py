"""``python -m detector.synthetic``: write a synthetic trail's archive, stream and labels.

Thin entry point: parse flags, build a :class:`SyntheticConfig`, call the writers. Records are
generated twice (once per output) rather than held in memory, so any size fits.

Imports: the standard library and :mod:`detector.synthetic`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from detector.errors import ConfigError
from detector.synthetic import (
    DEFAULT_APPS,
    DEFAULT_ATTACK_DAYS,
    DEFAULT_BASELINE_DAYS,
    DEFAULT_PEOPLE,
    DEFAULT_REGIONS,
    DEFAULT_WORKLOAD_ACCOUNTS,
    SCENARIOS,
    SyntheticConfig,
    attack_labels,
    build_organisation,
    iter_records,
    write_archive,
    write_envelopes,
    write_labels,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m detector.synthetic",
        description="Write synthetic CloudTrail (archive, EventBridge stream, attack labels).",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--days", type=int, default=DEFAULT_BASELINE_DAYS + DEFAULT_ATTACK_DAYS,
        help="whole period in days (baseline + attack)",
    )  # fmt: skip
    parser.add_argument("--attack-days", type=int, default=DEFAULT_ATTACK_DAYS)
    parser.add_argument("--events-per-day", type=float, default=None, help="approximate volume")
    parser.add_argument("--people", type=int, default=None)
    parser.add_argument("--apps", type=int, default=None)
    parser.add_argument("--workload-accounts", type=int, default=DEFAULT_WORKLOAD_ACCOUNTS)
    parser.add_argument(
        "--regions",
        default=",".join(DEFAULT_REGIONS),
        help="comma-separated, e.g. us-east-1,eu-west-1",
    )
    parser.add_argument("--no-attacks", action="store_true", help="clean traffic only")
    parser.add_argument(
        "--org-trail",
        action="store_true",
        help="organization trail layout AWSLogs/o-.../<account>/",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> SyntheticConfig:
    config = SyntheticConfig(
        baseline_days=args.days - args.attack_days,
        attack_days=args.attack_days,
        people=DEFAULT_PEOPLE if args.people is None else args.people,
        apps=DEFAULT_APPS if args.apps is None else args.apps,
        workload_accounts=args.workload_accounts,
        regions=tuple(region.strip() for region in args.regions.split(",") if region.strip()),
        scenarios=() if args.no_attacks else SCENARIOS,
    )
    if args.events_per_day is not None:
        config = config.with_events_per_day(args.events_per_day)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    org_id = build_organisation(config, args.seed).org_id if args.org_trail else None
    archive = write_archive(
        iter_records(config, args.seed),
        args.out / "archive",
        seed=args.seed,
        organization_id=org_id,
    )
    envelopes = write_envelopes(
        iter_records(config, args.seed), args.out / "envelopes.jsonl", seed=args.seed
    )
    labels = attack_labels(config, args.seed)
    write_labels(labels, args.out / "labels.json")
    elapsed = time.perf_counter() - started
    print(
        f"{archive.records} records in {len(archive.log_files)} log files "
        f"(+{len(archive.digest_files)} digests) under {args.out / 'archive'}; "
        f"{envelopes} envelopes; {len(labels)} labels; {elapsed:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
