"""The runtime of ``detector run``: wires the consumer to SQS, the state store (a directory or
``s3://``, see docs/state.md), the findings sinks, the ops port, signals and the log.

Start-up, in order, each failure a :class:`~detector.errors.DetectorError` naming the thing
(the CLI exits 2): the ops port (``/healthz`` answers from the start, ``/readyz`` says what is
not ready yet), the model, the state directory, the suppression rules if any (a file that fails
``detector suppressions check`` stops here), the input queue (it must exist and accept the
credentials; its ``VisibilityTimeout`` and ``RedrivePolicy`` become the consumer's defaults),
the findings sinks (queue, file, Security Hub, EventBridge bus: each checked; in shadow mode
only the shadow file or queue), then the saved state. Then the consumer runs until SIGTERM or
SIGINT and drains within the grace period: exit 0 when the last checkpoint was saved, 1 when
it was not, the input queue became unusable, or another process committed the same state
first (a :class:`~detector.errors.StateConflictError`: this one stops, deleting nothing).

Imports: the standard library, aiobotocore (one GetQueueAttributes at start-up), and the
detector's ingest, sinks, state, scoring, pipeline, suppression and this package.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
from collections.abc import Mapping
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, cast

import orjson
from aiobotocore.session import AioSession

from detector.detections import Detection, default_detections
from detector.errors import ConfigError, DetectorError, ModelError
from detector.features import FeatureConfig
from detector.ingest import (
    KinesisConfig,
    KinesisShardQueue,
    KinesisStream,
    MessageQueue,
    SqsConfig,
    SqsQueue,
)
from detector.pipeline import Pipeline, PipelineConfig
from detector.process import tune_gc
from detector.registry import open_registry, split_model_url
from detector.scoring import (
    DEFAULT_MODEL_DIR,
    ModelArtifact,
    ModelSigning,
    load_artifact,
    signing_from_environment,
)
from detector.service._consumer import Consumer
from detector.service._http import Health, OpsServer
from detector.service._logging import configure_logging, fields
from detector.service._metrics import ServiceMetrics
from detector.service._model_watch import ModelWatcher
from detector.service._policy import DEFAULT_VISIBILITY_TIMEOUT, ConsumerConfig
from detector.service._settings import ServiceSettings, resolve_settings
from detector.sinks import FindingFormat, JsonlFindingSink, SinkChoice, open_sinks
from detector.state import S3StateStore, StateStore, is_s3_location, open_state_store
from detector.suppression import Suppressor, rules_source
from detector.timeliness import EarlyConfig

__all__ = ["ServiceRuntime", "load_model", "run_command"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_CONFIG: Final = 2
EXIT_INTERRUPTED: Final = 130
_WATCHDOG_EXTRA_SECONDS: Final = 10.0  # past the grace period, a stuck drain is cut short

_log = logging.getLogger("detector.service")


def load_model(folder: Path, signing: ModelSigning | None = None) -> ModelArtifact:
    """The model, or a :class:`ModelError` that names the folder (and a likely fix)."""
    try:
        return load_artifact(folder, signing)
    except ModelError as err:
        hint = ""
        nested = sorted(p.parent.name for p in folder.glob("*/manifest.json"))
        if nested:
            hint = f" (it holds model folders {nested}: did you mean {folder / nested[0]}?)"
        raise ModelError(f"cannot load the model {folder}: {err}{hint}") from None


def is_registry_model(location: Path | str) -> bool:
    """An s3:// URL, or a file (a local registry's pointer) rather than a model folder."""
    return isinstance(location, str) or Path(location).is_file()


def _check_state_dir(location: str | Path) -> None:
    if is_s3_location(location):
        return  # read when the consumer starts; a write is refused at a checkpoint, loudly
    folder = Path(location)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as err:
        raise ConfigError(f"state directory {folder} is not writable: {err}") from None


async def queue_attributes(config: SqsConfig) -> dict[str, str]:
    """VisibilityTimeout and RedrivePolicy of a queue ({} if they cannot be read: the consumer
    then uses its own defaults)."""
    session = AioSession()
    try:
        async with session.create_client(
            "sqs", region_name=config.region, endpoint_url=config.endpoint_url
        ) as client:
            response = await client.get_queue_attributes(
                QueueUrl=config.queue_url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
            )
    except Exception as err:  # the queue answered SqsQueue.open: this is only a nicety
        _log.warning(
            "queue attributes unreadable", extra=fields(queue=config.queue_url, error=str(err))
        )
        return {}
    return {str(k): str(v) for k, v in response.get("Attributes", {}).items()}


def _max_receive_count(attributes: Mapping[str, str]) -> int | None:
    try:
        policy = orjson.loads(attributes["RedrivePolicy"])
        return int(policy["maxReceiveCount"])
    except (KeyError, ValueError, TypeError, orjson.JSONDecodeError):
        return None


def consumer_config(settings: ServiceSettings, attributes: Mapping[str, str]) -> ConsumerConfig:
    """The consumer's settings: flags and variables first, then what the queue says."""
    visibility = settings.visibility_timeout
    if visibility is None:
        try:
            visibility = int(attributes["VisibilityTimeout"])
        except (KeyError, ValueError):
            visibility = DEFAULT_VISIBILITY_TIMEOUT
    return ConsumerConfig(
        receivers=settings.receivers,
        wait_seconds=settings.wait_seconds,
        visibility_timeout=max(1, visibility),
        batch_size=settings.batch_size,
        max_batch_size=max(settings.max_batch_size, settings.batch_size),
        batch_seconds=settings.batch_seconds,
        min_batch_seconds=settings.min_batch_seconds,
        checkpoint_seconds=settings.checkpoint_seconds,
        max_held_messages=max(settings.max_held_messages, settings.batch_size),
        poison_retry_seconds=settings.poison_retry_seconds,
        max_receive_count=settings.max_receive_count or _max_receive_count(attributes),
        idle_seconds=settings.idle_seconds,
    )


def pipeline_config(settings: ServiceSettings, window: timedelta) -> PipelineConfig:
    """The live path's pipeline: its own allowed lateness, and early reports (docs/latency.md)."""
    early = settings.early_seconds
    return PipelineConfig(
        FeatureConfig(window=window, allowed_lateness=timedelta(seconds=settings.allowed_lateness)),
        early=EarlyConfig(timedelta(seconds=early)) if early > 0 else None,
    )


class ServiceRuntime:
    """One run of the service: :meth:`run` until :meth:`stop` (a signal, or a test)."""

    def __init__(self, settings: ServiceSettings, *, metrics: ServiceMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or ServiceMetrics()
        self.health = Health(
            not_ready={"model": "not loaded", "queues": "not checked", "state": "not restored"}
        )
        self.consumer: Consumer | None = None
        self.ops: OpsServer | None = None
        self.consuming = asyncio.Event()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Begin the shutdown (idempotent; safe from a signal handler)."""
        self._stop.set()
        if self.consumer is not None:
            self.consumer.stop()

    @property
    def sink_choice(self) -> SinkChoice:
        settings = self.settings
        if settings.shadow:  # native JSON, so that `detector shadow-report` can read it
            return SinkChoice(
                findings_queue_url=settings.shadow_findings_queue_url,
                findings_file=settings.shadow_file,
            )
        return SinkChoice(
            findings_queue_url=settings.findings_queue_url,
            findings_file=settings.findings_file,
            security_hub=settings.security_hub,
            event_bus=settings.event_bus,
            findings_format=cast(FindingFormat, settings.findings_format),
        )

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run(self) -> int:
        """Exit status: 0 drained cleanly, 1 not; start-up problems raise DetectorError."""
        settings = self.settings
        async with AsyncExitStack() as stack:
            ops = OpsServer(self.health, self.metrics, settings.metrics_host, settings.metrics_port)
            try:
                await ops.start()
            except OSError as err:
                raise ConfigError(
                    f"cannot serve /healthz, /readyz and /metrics on "
                    f"{settings.metrics_host}:{settings.metrics_port}: {err}"
                ) from None
            stack.push_async_callback(ops.close)
            self.ops = ops
            ticker = asyncio.create_task(self._tick_while_starting())
            stack.callback(ticker.cancel)
            starting = asyncio.create_task(self._start(stack))
            stopped = asyncio.create_task(self._stop.wait())
            await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not starting.done():  # stopped during start-up: nothing taken, nothing to drain
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                _log.info("stopped during start-up")
                return EXIT_OK
            consumer = starting.result()
            ticker.cancel()
            self.consumer = consumer
            if self.stopping:
                consumer.stop()
            self.consuming.set()
            report = await consumer.run(grace_seconds=settings.grace_seconds)
        return EXIT_OK if report.clean else EXIT_FAILED

    async def _tick_while_starting(self) -> None:
        while True:  # /healthz: alive while the model loads; /readyz says what is missing
            self.health.tick()
            await asyncio.sleep(1.0)

    async def _start(self, stack: AsyncExitStack) -> Consumer:
        settings = self.settings
        _log.info(
            "starting",
            extra=fields(
                queue=settings.queue_url,
                source=settings.source,
                findings_queue=settings.findings_queue_url,
                findings_file=settings.findings_file,
                model=settings.model_dir,
                state_dir=settings.state_dir,
                region=settings.region,
                endpoint=settings.endpoint_url,
                ops=f"{settings.metrics_host}:{self.ops.port if self.ops else settings.metrics_port}",
            ),
        )
        signing = signing_from_environment(os.environ)  # the key is a secret: never a flag
        watcher: ModelWatcher | None = None
        if is_registry_model(settings.model_dir):
            artifact, watcher = await self._registry_model(stack, signing)
            shipped = False
        else:
            artifact = await asyncio.to_thread(load_model, Path(settings.model_dir), signing)
            shipped = Path(settings.model_dir).resolve() == DEFAULT_MODEL_DIR.resolve()
        _log.info(
            "model loaded: %s (%s)",
            artifact.version,
            "the shipped default: a starting point, train one on your own trails"
            if shipped
            else "trained",
            extra=fields(model=settings.model_dir, model_version=artifact.version, shipped=shipped),
        )
        detections = await self._detections()
        self.health.ready("model")
        await asyncio.to_thread(_check_state_dir, settings.state_dir)
        _log.info(
            "findings go to" + (" (shadow mode: nowhere else)" if settings.shadow else ""),
            extra=fields(sinks=list(self.sink_choice.names), shadow=settings.shadow),
        )
        self.metrics.shadow_mode.set(1 if settings.shadow else 0)
        suppressor = await self._suppressor(stack)

        queue: MessageQueue
        if settings.kinesis_stream is not None:
            queue = await self._kinesis_source(settings.kinesis_stream, stack)
            attributes: dict[str, str] = {}
        else:
            assert settings.queue_url is not None  # ServiceSettings checks it
            input_config = self._sqs_config(settings.queue_url, settings.receivers + 6)
            queue = await SqsQueue.open(input_config)
            stack.push_async_callback(queue.close)
            attributes = await queue_attributes(input_config)
        sinks = await open_sinks(
            self.sink_choice,
            stack,
            region=settings.region,
            sqs_endpoint_url=settings.endpoint_url,
            on_failures=lambda sink, n: self.metrics.sink_failures.labels(sink=sink).inc(n),
        )
        self.health.ready("queues")

        config = consumer_config(settings, attributes)
        if config.visibility_timeout <= settings.grace_seconds:
            _log.warning(
                "the visibility timeout is not longer than the shutdown grace period: "
                "messages may be delivered twice during a drain",
                extra=fields(
                    visibility_timeout=config.visibility_timeout, grace=settings.grace_seconds
                ),
            )
        consumer = Consumer(
            Pipeline(
                artifact,
                detections=detections,
                config=pipeline_config(settings, artifact.window),
            ),
            queue,
            sinks,
            self._state_store(stack),
            config,
            metrics=self.metrics,
            health=self.health,
            suppressor=suppressor,
            model_updates=watcher,
        )
        await consumer.start()
        if watcher is not None:
            polling = asyncio.create_task(watcher.run(self._stop), name="model-poll")
            stack.callback(polling.cancel)
        self.health.ready("state")
        _log.info(
            "consuming",
            extra=fields(
                fifo=queue.fifo,
                model_version=artifact.version,
                visibility_timeout=config.visibility_timeout,
                max_receive_count=config.max_receive_count,
                receivers=config.receivers,
                batch_size=config.batch_size,
                checkpoint_seconds=config.checkpoint_seconds,
            ),
        )
        return consumer

    async def _suppressor(self, stack: AsyncExitStack) -> Suppressor | None:
        """The suppression rules, loaded (an unusable file stops the start-up), and their
        audit file."""
        settings = self.settings
        if settings.suppressions is None:
            return None
        audit_file = settings.audit_file
        if not audit_file.parent.is_dir():
            raise ConfigError(f"suppression audit file {audit_file}: no folder {audit_file.parent}")
        audit = JsonlFindingSink(audit_file)
        stack.push_async_callback(audit.close)
        # S3's endpoint, if any, is botocore's own AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL.
        source = rules_source(settings.suppressions, region=settings.region)
        m = self.metrics
        suppressor = Suppressor(
            source,
            audit,
            on_rules=m.suppression_rules.set,
            on_reload_failed=m.suppression_reload_failures.inc,
        )
        stack.push_async_callback(suppressor.close)
        await suppressor.start()
        _log.info(
            "suppressed findings go to",
            extra=fields(audit=str(audit_file), rules=len(suppressor.rules)),
        )
        return suppressor

    async def _registry_model(
        self, stack: AsyncExitStack, signing: ModelSigning
    ) -> tuple[ModelArtifact, ModelWatcher | None]:
        """The model a registry pointer names and the watcher that follows the pointer (none
        for a fixed ``<name>@<hash>`` version)."""
        root, name = split_model_url(str(self.settings.model_dir))
        registry = await stack.enter_async_context(
            open_registry(root, endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3"), pointer=name)
        )
        # A cache only: with the state in S3 it lives in the pod's scratch space.
        local = self.settings.local_state_dir
        cache = (local or Path(tempfile.gettempdir()) / "detector") / "models"
        if "@" in name:
            return await registry.load(name, cache, signing), None
        watcher = ModelWatcher(
            registry,
            cache,
            signing=signing,
            metrics=self.metrics.model,
            poll_seconds=self.settings.model_poll_seconds,
        )
        return await watcher.initial(), watcher

    async def _detections(self) -> tuple[Detection, ...]:
        """The shipped detections and the Sigma rules that compile; each refused rule is
        logged with its reason, the counts logged and exported."""
        if not self.settings.sigma_rules:
            return default_detections()
        from detector.sigma import load_rules

        rules = await load_rules(self.settings.sigma_rules)
        for refused in rules.refused:
            _log.warning(
                "Sigma rule refused",
                extra=fields(rule_id=refused.rule_id, source=refused.source, reason=refused.reason),
            )
        _log.info(
            "Sigma rules loaded",
            extra=fields(
                loaded=len(rules.detections),
                refused=len(rules.refused),
                other_logsource=rules.other_logsource,
            ),
        )
        self.metrics.sigma_rules.labels(state="loaded").set(len(rules.detections))
        self.metrics.sigma_rules.labels(state="refused").set(len(rules.refused))
        return (*default_detections(), *rules.detections)

    async def _kinesis_source(self, stream: str, stack: AsyncExitStack) -> KinesisShardQueue:
        """The shards this consumer owns; ConfigError if the stream cannot be read or this
        ordinal owns none."""
        settings = self.settings
        config = KinesisConfig(
            stream, region=settings.region, endpoint_url=settings.kinesis_endpoint_url
        )
        try:
            client = await KinesisStream.open(config)
        except ConfigError:
            raise
        except Exception as err:
            raise ConfigError(f"Kinesis stream {stream} cannot be used: {err}") from None
        stack.push_async_callback(client.close)
        queue = await KinesisShardQueue(
            client, settings.consumer_ordinal, settings.consumer_count
        ).open()
        _log.info(
            "reading Kinesis shards",
            extra=fields(
                stream=stream,
                consumer=f"{settings.consumer_ordinal}/{settings.consumer_count}",
                shards=queue.shards,
            ),
        )
        return queue

    def _sqs_config(self, url: str, connections: int) -> SqsConfig:
        return SqsConfig(
            queue_url=url,
            region=self.settings.region,
            endpoint_url=self.settings.endpoint_url,
            max_pool_connections=connections,
        )

    def _state_store(self, stack: AsyncExitStack) -> StateStore:
        settings = self.settings
        store = open_state_store(
            settings.state_dir,
            kms_key_id=settings.state_kms_key,
            region=settings.region,
            endpoint_url=settings.s3_endpoint_url,
        )
        if isinstance(store, S3StateStore):
            stack.callback(store.close)
        return store


async def _serve(settings: ServiceSettings) -> int:
    runtime = ServiceRuntime(settings)
    loop = asyncio.get_running_loop()
    signals_seen: list[str] = []

    def on_signal(name: str) -> None:
        signals_seen.append(name)
        if len(signals_seen) > 1:
            _log.info("already stopping", extra=fields(signal=name))
            return
        _log.info(
            "signal received: draining", extra=fields(signal=name, grace=settings.grace_seconds)
        )
        runtime.stop()
        # A drain that outlives its grace period (a hung call) must not keep the process: what
        # was not checkpointed is not deleted, so leaving now loses nothing.
        loop.call_later(settings.grace_seconds + _WATCHDOG_EXTRA_SECONDS, _give_up)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum.name)
    try:
        return await runtime.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _give_up() -> None:
    _log.error(
        "the drain outlived its grace period: exiting now", extra=fields(exit_code=EXIT_FAILED)
    )
    logging.shutdown()
    os._exit(EXIT_FAILED)


def run_command(flags: Mapping[str, Any], environ: Mapping[str, str]) -> int:
    """``detector run``: the exit status (0 clean, 1 failed, 2 cannot start, 130 interrupted
    before the signal handlers were in place)."""
    try:
        settings = resolve_settings(flags, environ)
    except ConfigError as err:
        configure_logging("INFO")
        _log.error(f"cannot start: {err}", extra=fields(exit_code=EXIT_CONFIG))
        return EXIT_CONFIG
    configure_logging(settings.log_level)
    tune_gc()
    try:
        return asyncio.run(_serve(settings))
    except DetectorError as err:
        _log.error(
            f"cannot start: {err}",
            extra=fields(exit_code=EXIT_CONFIG, error_type=type(err).__name__),
        )
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception:  # a bug: what was not checkpointed was not deleted, so nothing is lost
        _log.exception("the service failed", extra=fields(exit_code=EXIT_FAILED))
        return EXIT_FAILED
