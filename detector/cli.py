"""The ``detector`` command: thin wiring from flags to the packages that do the work.

Each subcommand declares its flags here and hands the parsed arguments to the module that
runs it (imported only when that command runs, so ``--help`` stays fast).

Imports: the standard library and the detector's entry-point modules.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from detector.errors import DetectorError

__all__ = ["main"]


_RELATIVE = {"d": "days", "h": "hours", "m": "minutes"}


def _utc(text: str) -> datetime:
    """ISO-8601 date or time; naive values are UTC; ``now`` is now; ``-30d``, ``-12h`` or
    ``-90m`` are that long before now (a scheduled retraining's rolling period)."""
    from datetime import UTC, timedelta

    if text == "now":
        return datetime.now(UTC)
    if text.startswith("-") and text[-1:] in _RELATIVE and text[1:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{_RELATIVE[text[-1]]: int(text[1:-1])})
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _archive_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", help="a folder in CloudTrail's S3 layout, s3://bucket/prefix, or a .jsonl file"
    )
    parser.add_argument(
        "--since", type=_utc, help="first event time (ISO-8601, UTC, or -30d / -12h before now)"
    )
    parser.add_argument("--until", type=_utc, help="end of the period (exclusive), or 'now'")
    parser.add_argument("--accounts", type=_csv, help="comma-separated account ids")
    parser.add_argument("--regions", type=_csv, help="comma-separated regions")
    parser.add_argument("--endpoint-url", help="S3-compatible endpoint (moto, MinIO, ...)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detector", description="CloudTrail anomaly detector")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the main job on the embedded default")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="working folder")
    demo.add_argument("--seed", type=int, default=0, help="synthetic organisation (0: the model's)")

    train = commands.add_parser("train", help="train a model on an archive of CloudTrail")
    _archive_arguments(train)
    train.add_argument(
        "--out",
        required=True,
        help="model folder to write, or a registry s3://bucket/prefix/models (publishes "
        "<name>@<hash>/ with its quality report; promote it with `detector models promote`)",
    )
    train.add_argument("--name", help="model name (default: the folder's name; 'model' for s3)")
    train.add_argument("--alert-budget", type=float, help="model findings per 1,000 principal-days")
    train.add_argument("--warmup-hours", type=float, help="profile warm-up, not fitted")
    train.add_argument("--seed", type=int, default=0)

    replay = commands.add_parser("replay", help="replay an archive through the pipeline")
    _archive_arguments(replay)
    replay.add_argument("--model", type=Path, help="model folder (default: the shipped model)")
    replay.add_argument(
        "--allowed-lateness",
        type=float,
        metavar="S",
        help="a window closes this long (event time) after its end [DETECTOR_ARCHIVE_LATENESS; "
        "default: 900, archive files arrive 5-15 minutes late]",
    )
    replay.add_argument(
        "--out",
        "--findings-file",
        dest="out",
        type=Path,
        help="findings JSONL file (default: findings.jsonl when no other sink is given)",
    )
    replay.add_argument("--findings-queue-url", help="send findings to this SQS queue")
    replay.add_argument(
        "--security-hub",
        action="store_true",
        help="import findings into AWS Security Hub (ASFF)",
    )
    replay.add_argument("--event-bus", metavar="NAME", help="put findings on this EventBridge bus")
    replay.add_argument(
        "--findings-format",
        choices=["native", "ocsf", "asff"],
        default="native",
        help="format of findings in the file and on the queue (default: native)",
    )
    replay.add_argument(
        "--state-dir",
        metavar="LOCATION",
        help="keep state here, a directory or s3://bucket/prefix: resumable, and read by "
        "`detector run`",
    )
    replay.add_argument(
        "--state-kms-key",
        metavar="KEY",
        help="KMS key id or ARN: s3:// state objects are written with SSE-KMS under it",
    )
    replay.add_argument(
        "--sigma-rules",
        action="append",
        metavar="DIR",
        help="also run the CloudTrail Sigma rules in this folder or s3:// prefix (repeatable)",
    )
    replay.add_argument(
        "--suppressions",
        metavar="FILE",
        default=os.environ.get("DETECTOR_SUPPRESSIONS") or None,
        help="suppression rules (YAML file or s3://bucket/key), applied as `detector run` "
        "applies them [DETECTOR_SUPPRESSIONS]",
    )
    replay.add_argument(
        "--suppressions-audit",
        type=Path,
        metavar="FILE",
        default=Path("suppressed.jsonl"),
        help="JSON Lines file of the suppressed findings and their rules (default: "
        "suppressed.jsonl)",
    )
    replay.add_argument(
        "--max-bad",
        default="1%",
        help="bad input beyond which the replay fails (exit 1): a count of failed files and "
        "records (100), or a share of the files or of the records (0.01 or 1%%; default 1%%)",
    )
    replay.add_argument(
        "--max-file-bytes",
        type=int,
        help="a file larger than this once decompressed fails unread (default 256 MiB)",
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="quality report: train on a synthetic baseline, replay its attacks; with --shapes, "
        "organisations of different shapes from a cold start",
    )
    evaluate.add_argument("--baseline-days", type=int, default=10)
    evaluate.add_argument("--attack-days", type=int, default=2)
    evaluate.add_argument("--seed", type=int, default=1)
    evaluate.add_argument(
        "--alert-budget", type=float, help="model findings per 1,000 principal-days"
    )
    evaluate.add_argument(
        "--shapes",
        help="evaluate organisations of these shapes (comma-separated names, or dev, held-back, "
        "all) from a cold start, instead of the single synthetic organisation",
    )
    evaluate.add_argument(
        "--seeds",
        type=lambda text: [int(part) for part in _csv(text)],
        help="comma-separated seeds for --shapes (default: development seeds for development "
        "shapes, held-back seeds for held-back shapes)",
    )
    evaluate.add_argument(
        "--modes",
        type=_csv,
        help="comma-separated: default (shipped model), trained (trained on the shape's clean "
        "days); default: both",
    )
    evaluate.add_argument("--scale", type=float, default=1.0, help="shrink or grow head counts")
    evaluate.add_argument("--json", action="store_true", help="print the shape report as JSON")

    detections = commands.add_parser("detections", help="the shipped signature detections")
    detections_commands = detections.add_subparsers(dest="detections_command", required=True)
    export = detections_commands.add_parser(
        "export-sigma", help="write each detection Sigma can express as a Sigma rule"
    )
    export.add_argument("dir", type=Path, help="folder to write the rules into (created)")

    suppressions = commands.add_parser("suppressions", help="suppression rules")
    suppressions_commands = suppressions.add_subparsers(dest="suppressions_command", required=True)
    check = suppressions_commands.add_parser(
        "check",
        help="validate a suppression file (exit 1 naming each problem's line)",
    )
    check.add_argument("file", help="a YAML file or s3://bucket/key")
    check.add_argument("--endpoint-url", help="S3-compatible endpoint (moto, MinIO, ...)")

    shadow = commands.add_parser(
        "shadow-report",
        help="what shadow mode would have sent: per kind, day and principal, against the "
        "alert budget",
    )
    shadow.add_argument("findings", type=Path, help="the shadow findings JSONL file")
    shadow.add_argument(
        "--principal-days",
        type=float,
        help="active principal-days of the period (default: counted from the findings file, "
        "see docs/operator-loop.md)",
    )
    shadow.add_argument(
        "--principals",
        type=int,
        help="active principals per day: principal-days = this x the days the file covers",
    )
    shadow.add_argument(
        "--state-dir",
        type=Path,
        help="the shadow run's state: principal-days from its principal profiles (read with "
        "--model)",
    )
    shadow.add_argument(
        "--budget",
        type=float,
        help="model findings per 1,000 principal-days (default: the model's)",
    )
    shadow.add_argument(
        "--model",
        type=Path,
        help="the shadow run's model folder: its budget applies (default: the shipped model)",
    )
    shadow.add_argument("--top", type=int, default=10, help="principals listed (default 10)")
    shadow.add_argument("--json", action="store_true", help="print the report as JSON")

    models = commands.add_parser(
        "models", help="the model registry: list versions, promote one, roll back"
    )
    models_commands = models.add_subparsers(dest="models_command", required=True)
    for name, text in (
        ("list", "the published versions and which one runs"),
        ("promote", "point the registry's pointer at a version (the running one is kept)"),
        ("rollback", "point back at the version promoted before the running one"),
    ):
        sub = models_commands.add_parser(name, help=text)
        sub.add_argument("registry", help="s3://bucket/prefix/models, or a folder")
        if name == "promote":
            sub.add_argument("version", help="<name>@<hash>, as `detector models list` shows")
        sub.add_argument("--pointer", default="current", help="pointer object (default: current)")
        sub.add_argument("--endpoint-url", help="S3-compatible endpoint (moto, MinIO, ...)")

    from detector.service import add_run_arguments  # the flags table only: a light import

    run = commands.add_parser(
        "run",
        help="the streaming service: SQS in, findings out, state checkpointed",
        description="Consume CloudTrail events from SQS, send findings, checkpoint the state. "
        "Each flag may instead be given as its DETECTOR_* environment variable.",
    )
    add_run_arguments(run)

    from detector.route import add_route_arguments  # the flags table only: a light import

    route = commands.add_parser(
        "route",
        help="scale-out: SQS in, a Kinesis stream partitioned by principal out (stateless)",
        description="Read the EventBridge-fed queue and put each event on a Kinesis stream "
        "keyed by its principal, for `detector run --source kinesis://STREAM` consumers. Each "
        "flag may instead be given as its DETECTOR_* environment variable.",
    )
    add_route_arguments(route)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from detector.demo import DemoConfig, run_demo

            return run_demo(DemoConfig(out=args.out, seed=args.seed))
        if args.command == "run":
            from detector.service import run_command

            return run_command(vars(args), os.environ)
        if args.command == "models":
            from detector import registry_commands

            return registry_commands.run(args)
        if args.command == "route":
            from detector.route import route_command

            return route_command(vars(args), os.environ)
        if args.command == "detections":
            from detector import commands

            return commands.export_sigma(args)
        if args.command == "suppressions":
            from detector import commands

            return commands.check_suppressions(args)
        if args.command == "shadow-report":
            from detector import commands

            return commands.shadow_report(args)
        if args.command in ("train", "replay", "evaluate"):
            from detector import commands

            command: int = getattr(commands, args.command)(args)
            return command
    except DetectorError as err:
        print(f"detector: error: {err}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
