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
from detector.detections import Detection, default_detections
from detector.errors import ConfigError
from detector.features import DEFAULT_ARCHIVE_LATENESS, FeatureConfig
from detector.pipeline import Pipeline, PipelineConfig
from detector.scoring import DEFAULT_MODEL_DIR, load_artifact, signing_from_environment
from detector.sinks import FanOutFindingSink, FindingSink, SinkChoice, open_sinks
from detector.training import TrainingConfig
from detector.training import train as train_model

__all__ = ["evaluate", "replay", "shape_names", "sink_choice", "train"]


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
    signing = signing_from_environment(os.environ)
    frames = event_frames(lambda: _opener(args), _filter(args))
    try:
        artifact = train_model(frames, args.out, config, args.source, signing)
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
        + (" (signed)" if signing.key is not None else "")
    )
    return 0


def sink_choice(args: argparse.Namespace) -> SinkChoice:
    """The sinks ``detector replay`` was given; the JSONL file ``findings.jsonl`` if none."""
    chosen = args.findings_queue_url or args.out or args.security_hub or args.event_bus
    return SinkChoice(
        findings_queue_url=args.findings_queue_url,
        findings_file=args.out if chosen else Path("findings.jsonl"),
        security_hub=args.security_hub,
        event_bus=args.event_bus,
        findings_format=args.findings_format,
    )


@contextlib.asynccontextmanager
async def _sink(choice: SinkChoice) -> AsyncIterator[FindingSink]:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    async with contextlib.AsyncExitStack() as stack:
        sinks = await open_sinks(
            choice,
            stack,
            region=region,
            sqs_endpoint_url=os.environ.get("AWS_ENDPOINT_URL_SQS")
            or os.environ.get("AWS_ENDPOINT_URL"),
        )
        yield sinks[0] if len(sinks) == 1 else FanOutFindingSink(sinks)


async def _detections(sigma_rules: list[str], endpoint_url: str | None) -> list[Detection]:
    """The shipped detections, and the Sigma rules at ``sigma_rules`` that compile."""
    if not sigma_rules:
        return list(default_detections())
    from detector.sigma import load_rules

    rules = await load_rules(sigma_rules, endpoint_url=endpoint_url)
    print(
        f"Sigma rules: {len(rules.detections)} loaded, {len(rules.refused)} refused"
        + "".join(f"\n  refused {r}" for r in rules.refused),
        file=sys.stderr,
    )
    return [*default_detections(), *rules.detections]


def _archive_lateness(args: argparse.Namespace) -> timedelta:
    """``--allowed-lateness``, else ``DETECTOR_ARCHIVE_LATENESS``, else 15 minutes."""
    given = args.allowed_lateness
    source = "--allowed-lateness"
    if given is None and os.environ.get("DETECTOR_ARCHIVE_LATENESS"):
        source = "DETECTOR_ARCHIVE_LATENESS"
        try:
            given = float(os.environ["DETECTOR_ARCHIVE_LATENESS"])
        except ValueError:
            raise ConfigError(f"{source} must be a number of seconds") from None
    if given is None:
        return DEFAULT_ARCHIVE_LATENESS
    if given < 0:
        raise ConfigError(f"{source} must not be negative, got {given}")
    return timedelta(seconds=given)


async def _replay(args: argparse.Namespace) -> int:
    from detector.archive import DecodeLimits
    from detector.replay import BadInputLimit, Progress
    from detector.replay import replay as run_replay
    from detector.state import LocalStateStore

    try:
        max_bad = BadInputLimit.parse(args.max_bad)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    limits = DecodeLimits()
    if args.max_file_bytes is not None:
        if args.max_file_bytes < 1:
            raise ConfigError(f"--max-file-bytes must be >= 1, got {args.max_file_bytes}")
        limits = DecodeLimits(max_file_bytes=args.max_file_bytes)
    signing = signing_from_environment(os.environ)
    artifact = load_artifact(args.model or DEFAULT_MODEL_DIR, signing)
    pipeline = Pipeline(
        artifact,
        detections=await _detections(args.sigma_rules or [], args.endpoint_url),
        config=PipelineConfig(FeatureConfig(artifact.window, _archive_lateness(args))),
    )
    store = LocalStateStore(args.state_dir) if args.state_dir else None
    choice = sink_choice(args)
    async with _opener(args) as source, _sink(choice) as sink:
        summary = await run_replay(
            source,
            args.source,
            pipeline,
            sink,
            filter=_filter(args),
            store=store,
            progress=Progress(sys.stderr),
            limits=limits,
        )
    print(summary.text())
    for where in choice.names:
        print(f"findings -> {where}")
    if args.state_dir:
        print(f"state -> {args.state_dir}")
    too_many = max_bad.exceeded(summary)
    if too_many is not None:
        print(f"detector: replay failed: too much bad input: {too_many}", file=sys.stderr)
        return 1
    return 0


def replay(args: argparse.Namespace) -> int:
    return asyncio.run(_replay(args))


def evaluate(args: argparse.Namespace) -> int:
    if args.shapes is not None or args.seeds is not None:
        return _evaluate_shapes(args)
    from detector.evaluation import synthetic_quality_report
    from detector.synthetic import SyntheticConfig

    training = TrainingConfig()
    if args.alert_budget is not None:
        training = replace(training, alert_budget=args.alert_budget)
    synthetic = SyntheticConfig(baseline_days=args.baseline_days, attack_days=args.attack_days)
    report = synthetic_quality_report(synthetic, args.seed, training=training)
    print(report.text())
    return 0


def export_sigma(args: argparse.Namespace) -> int:
    from detector.sigma import export_rules

    written = export_rules(args.dir, default_detections())
    print(
        f"{len(written)} of {len(default_detections())} detections written as Sigma rules -> {args.dir}"
    )
    return 0


def shape_names(text: str | None) -> list[str] | None:
    from detector.synthetic import DEVELOPMENT_SHAPES, HELD_BACK_SHAPES, SHAPES

    if text is None:
        return None
    groups = {
        "dev": list(DEVELOPMENT_SHAPES),
        "held-back": list(HELD_BACK_SHAPES),
        "all": [*DEVELOPMENT_SHAPES, *HELD_BACK_SHAPES],
    }
    names: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part not in groups and part not in SHAPES:
            known = ", ".join([*groups, *SHAPES])
            raise ConfigError(f"--shapes: unknown shape {part!r}; known: {known}")
        names += groups.get(part, [part])
    return names


def _evaluate_shapes(args: argparse.Namespace) -> int:
    import orjson

    from detector.evaluation import (
        MODES,
        evaluate_shapes,
        shape_report_json,
        shape_report_text,
        shape_runs,
    )

    modes = args.modes or list(MODES)
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise ConfigError(f"--modes: unknown {unknown}; known: {list(MODES)}")
    runs = shape_runs(shape_names(args.shapes), args.seeds)
    results = evaluate_shapes(
        runs,
        modes,
        scale=args.scale,
        on_result=lambda r: print(
            f"evaluated {r.shape} seed {r.seed} ({r.mode})", file=sys.stderr, flush=True
        ),
    )
    if args.json:
        print(orjson.dumps(shape_report_json(results), option=orjson.OPT_INDENT_2).decode())
    else:
        print(shape_report_text(results))
    return 0
