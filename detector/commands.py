"""What ``detector train``, ``detector replay`` and ``detector evaluate`` do with their flags.

The edge: opens sources, files and queues, reads the clock, prints. The work is in
:mod:`detector.training`, :mod:`detector.replay` and :mod:`detector.evaluation`.

Imports: the standard library and the detector's packages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from detector.archive import ArchiveFilter, ArchiveSource, source_for
from detector.errors import ConfigError
from detector.pipeline import Pipeline
from detector.scoring import DEFAULT_MODEL_DIR, load_artifact
from detector.sinks import FindingSink, JsonlFindingSink
from detector.training import TrainingConfig
from detector.training import train as train_model

__all__ = ["evaluate", "replay", "train"]


def _filter(args: argparse.Namespace) -> ArchiveFilter:
    return ArchiveFilter(
        accounts=args.accounts, regions=args.regions, since=args.since, until=args.until
    )


def _endpoint(args: argparse.Namespace) -> str | None:
    return (
        args.endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )


def _opener(args: argparse.Namespace) -> contextlib.AbstractAsyncContextManager[ArchiveSource]:
    source = source_for(args.source, endpoint_url=_endpoint(args))
    if isinstance(source, contextlib.AbstractAsyncContextManager):
        return source
    return contextlib.nullcontext(source)


def train(args: argparse.Namespace) -> int:
    from detector.replay import event_frames

    config = TrainingConfig(name=args.name or args.out.name, seed=args.seed)
    if args.alert_budget is not None:
        config = replace(config, alert_budget=args.alert_budget)
    if args.warmup_hours is not None:
        config = replace(config, warmup=timedelta(hours=args.warmup_hours), adapt_warmup=False)
    frames = event_frames(lambda: _opener(args), _filter(args))
    try:
        artifact = train_model(frames, args.out, config, args.source)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    t = artifact.manifest["training"]
    warmup = timedelta(seconds=t["warmup_seconds"])
    if t.get("warmup_adapted"):
        print(f"warm-up {warmup} (a quarter of the short period; the default is {config.warmup})")
    print(
        f"trained {artifact.version} on {t['events']:,} events, {t['principals']} principals, "
        f"{t['windows_fitted']:,} windows; threshold {artifact.threshold:.6f} at "
        f"{config.alert_budget:g} findings per 1,000 principal-days -> {args.out}"
    )
    return 0


@contextlib.asynccontextmanager
async def _sink(args: argparse.Namespace) -> AsyncIterator[FindingSink]:
    if args.findings_queue_url:
        from detector.ingest import SqsConfig
        from detector.sinks import SqsFindingSink

        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        config = SqsConfig(
            queue_url=args.findings_queue_url,
            region=region,
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL_SQS")
            or os.environ.get("AWS_ENDPOINT_URL"),
        )
        sink: FindingSink = await SqsFindingSink.open(config)
    else:
        sink = JsonlFindingSink(args.out or Path("findings.jsonl"))
    try:
        yield sink
    finally:
        await sink.close()


async def _replay(args: argparse.Namespace) -> int:
    from detector.replay import Progress
    from detector.replay import replay as run_replay
    from detector.state import LocalStateStore

    pipeline = Pipeline(load_artifact(args.model or DEFAULT_MODEL_DIR))
    store = LocalStateStore(args.state_dir) if args.state_dir else None
    async with _opener(args) as source, _sink(args) as sink:
        summary = await run_replay(
            source,
            args.source,
            pipeline,
            sink,
            filter=_filter(args),
            store=store,
            progress=Progress(sys.stderr),
        )
    print(summary.text())
    where = args.findings_queue_url or args.out or "findings.jsonl"
    print(f"findings -> {where}" + (f"; state -> {args.state_dir}" if args.state_dir else ""))
    return 0


def replay(args: argparse.Namespace) -> int:
    return asyncio.run(_replay(args))


def evaluate(args: argparse.Namespace) -> int:
    from detector.evaluation import synthetic_quality_report
    from detector.synthetic import SyntheticConfig

    training = TrainingConfig()
    if args.alert_budget is not None:
        training = replace(training, alert_budget=args.alert_budget)
    synthetic = SyntheticConfig(baseline_days=args.baseline_days, attack_days=args.attack_days)
    report = synthetic_quality_report(synthetic, args.seed, training=training)
    print(report.text())
    return 0
