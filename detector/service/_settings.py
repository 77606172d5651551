"""``detector run``'s settings: each one a flag and a ``DETECTOR_*`` environment variable, with a
documented default; a flag wins over its variable, a variable over the default.

:data:`OPTIONS` is the single table: the argparse flags, the resolution and the README's table
(:func:`options_table`) are all generated from it. AWS itself is configured the standard way
(``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL_SQS``/``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``..., ``AWS_PROFILE``, IRSA's web identity): credentials are left to
botocore's default chain.

Imports: the standard library, :mod:`detector.errors` and the consumer's policy (defaults).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from detector.errors import ConfigError
from detector.service._policy import (
    DEFAULT_BATCH_SECONDS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHECKPOINT_SECONDS,
    DEFAULT_GRACE_SECONDS,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_HELD_MESSAGES,
    DEFAULT_MIN_BATCH_SECONDS,
    DEFAULT_POISON_RETRY_SECONDS,
    DEFAULT_RECEIVERS,
    DEFAULT_WAIT_SECONDS,
)

__all__ = [
    "DEFAULT_METRICS_HOST",
    "DEFAULT_METRICS_PORT",
    "DEFAULT_STATE_DIR",
    "OPTIONS",
    "Option",
    "ServiceSettings",
    "add_arguments",
    "add_run_arguments",
    "options_table",
    "resolve_settings",
    "resolve_values",
]

DEFAULT_METRICS_HOST: Final = "0.0.0.0"  # the container's probes and scrapes come from outside
DEFAULT_METRICS_PORT: Final = 9102
DEFAULT_STATE_DIR: Final = Path("detector-state")
DEFAULT_REGION: Final = "us-east-1"
KINESIS_SCHEME: Final = "kinesis://"
_SQS_HOST_REGION: Final = re.compile(r"^https?://sqs[.-]([a-z0-9-]+)\.amazonaws\.com")


def _locations(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be positive")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("must be 0 or more")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be 0..65535 (0: any free port)")
    return value


def _url(text: str) -> str:
    if not text.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return text


def _level(text: str) -> str:
    level = text.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be debug, info, warning or error")
    return level


def _yes_no(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError("must be true or false")
    return value in ("true", "1", "yes")


def _findings_format(text: str) -> str:
    value = text.strip().lower()
    if value not in ("native", "ocsf", "asff"):
        raise ValueError("must be native, ocsf or asff")
    return value


def _source(text: str) -> str:
    value = text.strip()
    if value.startswith(KINESIS_SCHEME):
        name = value[len(KINESIS_SCHEME) :].strip("/")
        if not name or "/" in name:
            raise ValueError("must be kinesis://STREAM_NAME or an SQS queue URL")
        return value
    return _url(value)


def _default_model_dir() -> Path:
    from detector.scoring import DEFAULT_MODEL_DIR  # the shipped model; scoring is heavy to import

    return DEFAULT_MODEL_DIR


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: ``name`` (the attribute), its flag and variable, how to read it."""

    name: str
    flag: str
    env: str
    parse: Callable[[str], Any]
    default: Any
    default_text: str
    help: str
    metavar: str = "VALUE"
    repeatable: bool = False  # the flag may be given several times; the variable is a list
    bare: str | None = None  # the value of the flag given alone (``--security-hub``)


OPTIONS: Final[tuple[Option, ...]] = (
    Option("queue_url", "--queue-url", "DETECTOR_QUEUE_URL", _url, None, "required (unless --source)",
           "the input SQS queue (EventBridge puts CloudTrail events on it)", "URL"),
    Option("source", "--source", "DETECTOR_SOURCE", _source, None, "the --queue-url",
           "where events come from: an SQS queue URL, or kinesis://STREAM to read the shards "
           "this consumer owns (written by `detector route`; see docs/scale-out.md)", "SOURCE"),
    Option("consumer_ordinal", "--consumer-ordinal", "DETECTOR_CONSUMER_ORDINAL",
           _non_negative_int, 0, "0", "with kinesis://: this consumer's number, 0..count-1 (a "
           "StatefulSet pod's index); it reads the shards whose index modulo the count is it",
           "I"),
    Option("consumer_count", "--consumer-count", "DETECTOR_CONSUMER_COUNT", _positive_int, 1,
           "1", "with kinesis://: how many consumers share the stream's shards", "N"),
    Option("findings_queue_url", "--findings-queue-url", "DETECTOR_FINDINGS_QUEUE_URL", _url, None,
           "none", "the SQS queue findings are sent to, one finding per message", "URL"),
    Option("findings_file", "--findings-file", "DETECTOR_FINDINGS_FILE", Path, None, "none",
           "also append findings to this JSON Lines file (its folder must exist)", "FILE"),
    Option("security_hub", "--security-hub", "DETECTOR_SECURITY_HUB", _yes_no, False, "false",
           "also import findings into AWS Security Hub (ASFF, BatchImportFindings)", "BOOL",
           bare="true"),
    Option("event_bus", "--event-bus", "DETECTOR_EVENT_BUS", str, None, "none",
           "also put findings on this EventBridge bus (name or ARN)", "NAME"),
    Option("findings_format", "--findings-format", "DETECTOR_FINDINGS_FORMAT", _findings_format,
           "native", "native", "format of findings on the queue and in the file: native, ocsf "
           "(OCSF Detection Finding) or asff", "FORMAT"),
    Option("model_dir", "--model", "DETECTOR_MODEL", Path, None, "the shipped models/default",
           "the model folder to load", "DIR"),
    Option("state_dir", "--state-dir", "DETECTOR_STATE_DIR", Path, DEFAULT_STATE_DIR,
           str(DEFAULT_STATE_DIR), "where state checkpoints are kept (created if missing)", "DIR"),
    Option("metrics_host", "--metrics-host", "DETECTOR_METRICS_HOST", str, DEFAULT_METRICS_HOST,
           DEFAULT_METRICS_HOST, "address of /healthz, /readyz and /metrics", "HOST"),
    Option("metrics_port", "--metrics-port", "DETECTOR_METRICS_PORT", _port, DEFAULT_METRICS_PORT,
           str(DEFAULT_METRICS_PORT), "port of /healthz, /readyz and /metrics (0: any free one)",
           "PORT"),
    Option("receivers", "--receivers", "DETECTOR_RECEIVERS", _positive_int, DEFAULT_RECEIVERS,
           str(DEFAULT_RECEIVERS), "long polls in flight at once", "N"),
    Option("wait_seconds", "--wait-seconds", "DETECTOR_WAIT_SECONDS", _non_negative_int,
           DEFAULT_WAIT_SECONDS, str(DEFAULT_WAIT_SECONDS), "long-poll wait of each receive (0..20)",
           "S"),
    Option("visibility_timeout", "--visibility-timeout", "DETECTOR_VISIBILITY_TIMEOUT",
           _positive_int, None, "the queue's VisibilityTimeout",
           "invisibility asked for at each receive and each heartbeat", "S"),
    Option("batch_size", "--batch-size", "DETECTOR_BATCH_SIZE", _positive_int, DEFAULT_BATCH_SIZE,
           str(DEFAULT_BATCH_SIZE), "messages per micro-batch", "N"),
    Option("max_batch_size", "--max-batch-size", "DETECTOR_MAX_BATCH_SIZE", _positive_int,
           DEFAULT_MAX_BATCH_SIZE, str(DEFAULT_MAX_BATCH_SIZE),
           "when behind, one step takes everything buffered up to this many messages", "N"),
    Option("batch_seconds", "--batch-seconds", "DETECTOR_BATCH_SECONDS", _positive_float,
           DEFAULT_BATCH_SECONDS, f"{DEFAULT_BATCH_SECONDS:g}",
           "a micro-batch is cut when its oldest message has waited this long", "S"),
    Option("min_batch_seconds", "--min-batch-seconds", "DETECTOR_MIN_BATCH_SECONDS",
           _non_negative_float, DEFAULT_MIN_BATCH_SECONDS, f"{DEFAULT_MIN_BATCH_SECONDS:g}",
           "under a busy stream, micro-batches are cut at most this often and grow instead "
           "(a step's cost is mostly per batch)", "S"),
    Option("checkpoint_seconds", "--checkpoint-seconds", "DETECTOR_CHECKPOINT_SECONDS",
           _positive_float, DEFAULT_CHECKPOINT_SECONDS, f"{DEFAULT_CHECKPOINT_SECONDS:g}",
           "state checkpoint interval; messages are deleted after the checkpoint that includes "
           "them", "S"),
    Option("max_held_messages", "--max-held-messages", "DETECTOR_MAX_HELD_MESSAGES",
           _positive_int, DEFAULT_MAX_HELD_MESSAGES, str(DEFAULT_MAX_HELD_MESSAGES),
           "receiving pauses (and a checkpoint is taken) when this many messages are held", "N"),
    Option("poison_retry_seconds", "--poison-retry-seconds", "DETECTOR_POISON_RETRY_SECONDS",
           _non_negative_int, DEFAULT_POISON_RETRY_SECONDS, str(DEFAULT_POISON_RETRY_SECONDS),
           "a message that cannot be parsed is visible again after this long (never deleted: "
           "the redrive policy moves it to the DLQ)", "S"),
    Option("max_receive_count", "--max-receive-count", "DETECTOR_MAX_RECEIVE_COUNT",
           _positive_int, None, "the queue's RedrivePolicy",
           "receives after which a failed message goes to the DLQ (for detector_messages_dlq_bound)",
           "N"),
    Option("grace_seconds", "--grace-seconds", "DETECTOR_GRACE_SECONDS", _positive_float,
           DEFAULT_GRACE_SECONDS, f"{DEFAULT_GRACE_SECONDS:g}",
           "after SIGTERM/SIGINT: time to finish, checkpoint, release and exit", "S"),
    Option("log_level", "--log-level", "DETECTOR_LOG_LEVEL", _level, "INFO", "info",
           "debug, info, warning or error (JSON lines on stderr)", "LEVEL"),
    Option("sigma_rules", "--sigma-rules", "DETECTOR_SIGMA_RULES", _locations, (), "none",
           "also run the CloudTrail Sigma rules in this folder or s3:// prefix (repeatable; "
           "the variable takes a comma-separated list)", "DIR", repeatable=True),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Everything ``detector run`` was told, resolved (a value; read from nowhere)."""

    queue_url: str | None = None
    source: str | None = None
    consumer_ordinal: int = 0
    consumer_count: int = 1
    findings_queue_url: str | None = None
    findings_file: Path | None = None
    security_hub: bool = False
    event_bus: str | None = None
    findings_format: str = "native"
    model_dir: Path = field(default_factory=_default_model_dir)
    state_dir: Path = DEFAULT_STATE_DIR
    metrics_host: str = DEFAULT_METRICS_HOST
    metrics_port: int = DEFAULT_METRICS_PORT
    receivers: int = DEFAULT_RECEIVERS
    wait_seconds: int = DEFAULT_WAIT_SECONDS
    visibility_timeout: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_seconds: float = DEFAULT_BATCH_SECONDS
    min_batch_seconds: float = DEFAULT_MIN_BATCH_SECONDS
    checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS
    max_held_messages: int = DEFAULT_MAX_HELD_MESSAGES
    poison_retry_seconds: int = DEFAULT_POISON_RETRY_SECONDS
    max_receive_count: int | None = None
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    log_level: str = "INFO"
    sigma_rules: tuple[str, ...] = ()
    region: str = DEFAULT_REGION
    endpoint_url: str | None = None
    kinesis_endpoint_url: str | None = None

    @property
    def kinesis_stream(self) -> str | None:
        """The stream name when the source is ``kinesis://STREAM``."""
        if self.source is None or not self.source.startswith(KINESIS_SCHEME):
            return None
        return self.source[len(KINESIS_SCHEME) :].strip("/")

    def __post_init__(self) -> None:
        if self.kinesis_stream is not None:
            if self.consumer_ordinal >= self.consumer_count:
                raise ConfigError(
                    f"--consumer-ordinal (DETECTOR_CONSUMER_ORDINAL) {self.consumer_ordinal} is "
                    f"not below --consumer-count (DETECTOR_CONSUMER_COUNT) {self.consumer_count}"
                )
        elif self.queue_url is None:
            raise ConfigError(
                "no input queue: give --queue-url or set DETECTOR_QUEUE_URL (or, to read a "
                "Kinesis stream, --source kinesis://STREAM or DETECTOR_SOURCE)"
            )
        chosen = (self.findings_queue_url, self.findings_file, self.security_hub, self.event_bus)
        if not any(chosen):
            raise ConfigError(
                "nowhere to send findings: give --findings-queue-url "
                "(DETECTOR_FINDINGS_QUEUE_URL), --findings-file (DETECTOR_FINDINGS_FILE), "
                "--security-hub (DETECTOR_SECURITY_HUB) or --event-bus (DETECTOR_EVENT_BUS), "
                "or several"
            )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``detector run`` (each defaults to its variable, then its default)."""
    add_arguments(parser, OPTIONS)


def resolve_values(
    options: Sequence[Option], flags: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, Any]:
    """Each option's value: its flag (None when not given), else its variable, else its
    default (left out when that is None); ConfigError naming the flag or the variable."""
    values: dict[str, Any] = {}
    for option in options:
        given = flags.get(option.name)
        source = option.flag
        if isinstance(given, list):  # a repeatable flag
            given = ",".join(given)
        if given is None or given == "":
            given, source = environ.get(option.env) or None, option.env
        if given is None:
            if option.default is not None:
                values[option.name] = option.default
            continue
        try:
            values[option.name] = option.parse(str(given))
        except ValueError as err:
            raise ConfigError(f"{source}={given!r}: {err}") from None
    return values


def add_arguments(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """The flags of ``options`` (each defaults to its variable, then its default)."""
    for option in options:
        help_text = f"{option.help} [{option.env}; default: {option.default_text}]"
        if option.bare is not None:  # a switch that may also take a value
            parser.add_argument(
                option.flag,
                dest=option.name,
                default=None,
                nargs="?",
                const=option.bare,
                metavar=option.metavar,
                help=help_text,
            )
            continue
        parser.add_argument(
            option.flag,
            dest=option.name,
            default=None,
            action="append" if option.repeatable else "store",
            metavar=option.metavar,
            help=help_text,
        )


def resolve_settings(flags: Mapping[str, Any], environ: Mapping[str, str]) -> ServiceSettings:
    """Flags (None when not given) over ``DETECTOR_*`` variables over defaults; the AWS
    region and endpoint from the standard AWS variables (the region from the queue URL when
    none is set). Raises :class:`ConfigError` naming the flag and the variable."""
    values = resolve_values(OPTIONS, flags, environ)
    given_source = values.get("source")
    if given_source is not None and not given_source.startswith(KINESIS_SCHEME):
        values["queue_url"], values["source"] = given_source, None  # an SQS URL: the usual path
    if "queue_url" not in values and values.get("source") is None:
        raise ConfigError(
            "no input queue: give --queue-url or set DETECTOR_QUEUE_URL (or, to read a "
            "Kinesis stream, --source kinesis://STREAM or DETECTOR_SOURCE)"
        )
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if not region:
        found = _SQS_HOST_REGION.match(values.get("queue_url") or "")
        region = found.group(1) if found else DEFAULT_REGION
    endpoint = environ.get("AWS_ENDPOINT_URL_SQS") or environ.get("AWS_ENDPOINT_URL") or None
    kinesis = environ.get("AWS_ENDPOINT_URL_KINESIS") or environ.get("AWS_ENDPOINT_URL") or None
    return ServiceSettings(
        **values, region=region, endpoint_url=endpoint, kinesis_endpoint_url=kinesis
    )


def options_table(options: Sequence[Option] = OPTIONS) -> str:
    """The Markdown table of flags, variables and defaults (for the docs)."""
    rows = ["| flag | variable | default | meaning |", "|---|---|---|---|"]
    rows += [
        f"| `{o.flag} {o.metavar}` | `{o.env}` | {o.default_text} | {o.help} |" for o in options
    ]
    return "\n".join(rows)
