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
from datetime import date, timedelta
from pathlib import Path

from detector.archive import ArchiveFilter, ArchiveSource, source_for
from detector.detections import Detection, default_detections
from detector.errors import ConfigError
from detector.features import DEFAULT_ARCHIVE_LATENESS, FeatureConfig
from detector.pipeline import Pipeline, PipelineConfig
from detector.scoring import (
    DEFAULT_MODEL_DIR,
    ModelArtifact,
    load_artifact,
    signing_from_environment,
)
from detector.sinks import (
    FanOutFindingSink,
    FindingSink,
    JsonlFindingSink,
    SinkChoice,
    open_sinks,
)
from detector.suppression import (
    RuleSet,
    SuppressionFileError,
    Suppressor,
    load_rule_set,
    rules_source,
)
from detector.training import TrainingConfig
from detector.training import train as train_model

__all__ = [
    "check_suppressions",
    "evaluate",
    "replay",
    "shadow_report",
    "shape_names",
    "sink_choice",
    "train",
    "train_folder",
]


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
    if str(args.out).startswith("s3://"):
        from detector.registry_commands import train_to_registry

        return train_to_registry(args, train_folder)
    return train_folder(args, Path(args.out))


def train_folder(args: argparse.Namespace, out: Path) -> int:
    """Train into the model folder ``out``."""
    from detector.replay import event_frames

    config = TrainingConfig(name=args.name or out.name, seed=args.seed)
    if args.alert_budget is not None:
        config = replace(config, alert_budget=args.alert_budget)
    if args.warmup_hours is not None:
        config = replace(config, warmup=timedelta(hours=args.warmup_hours), adapt_warmup=False)
    signing = signing_from_environment(os.environ)
    frames = event_frames(lambda: _opener(args), _filter(args))
    try:
        artifact = train_model(frames, out, config, args.source, signing)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    t = artifact.manifest["training"]
    warmup = timedelta(seconds=t["warmup_seconds"])
    if t.get("warmup_adapted"):
        print(f"warm-up {warmup} (a quarter of the short period; the default is {config.warmup})")
    print(
        f"trained {artifact.version} on {t['events']:,} events, {t['principals']} principals, "
        f"{t['windows_fitted']:,} windows; threshold {artifact.threshold:.6f} at "
        f"{config.alert_budget:g} findings per 1,000 principal-days -> {out}"
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


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@contextlib.asynccontextmanager
async def _sink(choice: SinkChoice) -> AsyncIterator[FindingSink]:
    region = _region()
    async with contextlib.AsyncExitStack() as stack:
        sinks = await open_sinks(
            choice,
            stack,
            region=region,
            sqs_endpoint_url=os.environ.get("AWS_ENDPOINT_URL_SQS")
            or os.environ.get("AWS_ENDPOINT_URL"),
        )
        yield sinks[0] if len(sinks) == 1 else FanOutFindingSink(sinks)


@contextlib.asynccontextmanager
async def _suppressor(
    location: str | None, audit_file: Path, endpoint_url: str | None
) -> AsyncIterator[Suppressor | None]:
    """The suppression rules at ``location`` (None: no suppression), auditing to a file."""
    if location is None:
        yield None
        return
    if not audit_file.parent.is_dir():
        raise ConfigError(f"suppression audit file {audit_file}: no folder {audit_file.parent}")
    audit = JsonlFindingSink(audit_file)
    suppressor = Suppressor(rules_source(location, endpoint_url=endpoint_url), audit)
    try:
        await suppressor.start()
        yield suppressor
    finally:
        await suppressor.close()
        await audit.close()


def check_suppressions(args: argparse.Namespace) -> int:
    """``detector suppressions check FILE``: 0 and a summary, or 1 and each problem's line."""
    from datetime import UTC, datetime

    async def read() -> RuleSet:
        source = rules_source(args.file, endpoint_url=args.endpoint_url or _endpoint_env())
        try:
            return await load_rule_set(source)
        finally:
            await source.close()

    try:
        rules = asyncio.run(read())
    except SuppressionFileError as err:
        print(err, file=sys.stderr)
        return 1
    now = datetime.now(UTC)
    print(f"{args.file}: {len(rules)} rule(s) OK")
    for rule in rules.rules:
        until = "no expiry" if rule.expires is None else f"until {rule.expires:%Y-%m-%d %H:%M}Z"
        expired = "" if rule.active_at(now) else " (EXPIRED: matches nothing from then on)"
        print(f"  {rule.id} (line {rule.line}, {rule.owner}, {until}){expired}: {rule.reason}")
    return 0


def _endpoint_env() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def shadow_report(args: argparse.Namespace) -> int:
    """``detector shadow-report FINDINGS``."""
    import orjson

    from detector.shadow import budget_of, read_findings, summarise

    if not args.findings.is_file():
        raise ConfigError(f"shadow findings file {args.findings} does not exist")
    artifact = load_artifact(args.model or DEFAULT_MODEL_DIR, signing_from_environment(os.environ))
    budget = args.budget if args.budget is not None else budget_of(artifact.manifest)
    findings, failures = read_findings(args.findings)
    report = summarise(
        findings,
        budget=budget,
        principal_days=args.principal_days,
        principals_per_day=args.principals,
        bad_lines=failures,
    )
    given = args.principal_days is not None or args.principals is not None
    if args.state_dir is not None and not given and report.first_day and report.last_day:
        from_state = _state_principal_days(
            args.state_dir, artifact, report.first_day, report.last_day
        )
        if from_state is not None:
            days, how = from_state
            report = summarise(
                findings,
                budget=budget,
                principal_days=days,
                principal_days_how=how,
                bad_lines=failures,
            )
    if args.json:
        print(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(report.text(top=args.top))
    return 0


def _state_principal_days(
    state_dir: Path, artifact: ModelArtifact, first: date, last: date
) -> tuple[float, str] | None:
    """Principal-days of ``first``..``last`` from a saved state's profiles, and how they were
    counted; None (said on stderr) when the state knows nobody active then."""
    from detector.shadow import principal_days_from_profile
    from detector.state import LocalStateStore

    snapshot = LocalStateStore(state_dir).load()
    if snapshot is None:
        raise ConfigError(f"no saved state in {state_dir}")
    principals = Pipeline(artifact).restore(snapshot).features.profiles.principals
    days = principal_days_from_profile(principals, first, last)
    if days == 0:  # the profile learns as windows close: a short run may know nobody yet
        print(
            f"the state in {state_dir} knows no principal active in those days: "
            "principal-days counted from the file",
            file=sys.stderr,
        )
        return None
    how = (
        f"from the state in {state_dir}: {principals.height} principal(s) known, each counted "
        "from its first to its last event within the days covered (a ceiling)"
    )
    return float(days), how


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
    from detector.state import StateStore, open_state_store

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
    store: StateStore | None = None
    if args.state_dir:
        store = open_state_store(
            args.state_dir,
            kms_key_id=args.state_kms_key,
            region=_region(),
            endpoint_url=_endpoint(args),
        )
    choice = sink_choice(args)
    async with (
        _opener(args) as source,
        _sink(choice) as sink,
        _suppressor(args.suppressions, args.suppressions_audit, _endpoint(args)) as suppressor,
    ):
        summary = await run_replay(
            source,
            args.source,
            pipeline,
            sink,
            filter=_filter(args),
            store=store,
            progress=Progress(sys.stderr),
            limits=limits,
            suppressor=suppressor,
        )
    print(summary.text())
    for where in choice.names:
        print(f"findings -> {where}")
    if suppressor is not None:
        print(f"suppressed findings -> {args.suppressions_audit}")
    if args.state_dir:
        print(f"state -> {args.state_dir}")
    close = getattr(store, "close", None)  # an S3 store's client (the process ends on errors)
    if close is not None:
        close()
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
