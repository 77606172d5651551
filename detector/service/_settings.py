"""``detector run``'s settings: each one a flag and a ``DETECTOR_*`` environment variable, with a
documented default; a flag wins over its variable, a variable over the default.

:data:`OPTIONS` is the single table: the argparse flags, the resolution and the README's table
(:func:`options_table`) are all generated from it. AWS itself is configured the standard way
(``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL_SQS``/``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_S3`` for ``s3://`` state, ``AWS_ACCESS_KEY_ID``..., ``AWS_PROFILE``, IRSA's web identity): credentials are left to
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
    DEFAULT_IDLE_SECONDS,
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
# The live queue's allowed lateness (docs/latency.md): EventBridge delivers most CloudTrail
# events within seconds, so 2 minutes covers its stragglers; later ones are folded in as late
# corrections. Archive files arrive 5-15 minutes late: `detector replay` waits 15 minutes.
DEFAULT_ALLOWED_LATENESS_SECONDS: Final = 120.0
DEFAULT_EARLY_SECONDS: Final = 30.0
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


def _state_location(text: str) -> str | Path:
    """A directory (a Path), or ``s3://bucket/prefix`` (kept as text: a Path would fold its
    ``//``)."""
    if text.startswith("s3://"):
        if not text[len("s3://") :].split("/")[0]:
            raise ValueError("an s3:// location needs a bucket: s3://bucket/prefix")
        return text
    if "://" in text:
        raise ValueError("must be a directory or s3://bucket/prefix")
    return Path(text)


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


def _model_location(text: str) -> Path | str:
    """A model folder, or a registry pointer (``s3://bucket/prefix/models/current``), or a
    registry version (``.../models/<name>@<hash>``): s3 URLs stay text."""
    if text.startswith("s3://"):
        if text.rstrip("/").count("/") < 3:
            raise ValueError("expected s3://bucket/<registry>/<pointer>, e.g. .../models/current")
        return text
    if "://" in text:
        raise ValueError("a model is a folder or an s3:// URL")
    return Path(text)


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
    Option("model_dir", "--model", "DETECTOR_MODEL", _model_location, None,
           "the shipped models/default", "the model folder to load, or a registry pointer "
           "(s3://bucket/prefix/models/current) followed without a restart", "DIR|URL"),
    Option("model_poll_seconds", "--model-poll-seconds", "DETECTOR_MODEL_POLL_SECONDS",
           _positive_float, 60.0, "60", "how often a registry pointer is read for a new model",
           "S"),
    Option("state_dir", "--state-dir", "DETECTOR_STATE_DIR", _state_location, DEFAULT_STATE_DIR,
           str(DEFAULT_STATE_DIR), "where state checkpoints are kept: a directory (created if "
           "missing) or s3://bucket/prefix (see docs/state.md)", "LOCATION"),
    Option("state_kms_key", "--state-kms-key", "DETECTOR_STATE_KMS_KEY", str, None, "none",
           "KMS key id or ARN: s3:// state objects are written with SSE-KMS under it", "KEY"),
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
    Option("allowed_lateness", "--allowed-lateness", "DETECTOR_ALLOWED_LATENESS",
           _non_negative_float, DEFAULT_ALLOWED_LATENESS_SECONDS,
           f"{DEFAULT_ALLOWED_LATENESS_SECONDS:g}",
           "a window closes this long (event time) after its end; later events are folded in "
           "as late corrections (the live queue: EventBridge delivers in seconds; `detector "
           "replay` waits 900 for archive files)", "S"),
    Option("early_seconds", "--early-seconds", "DETECTOR_EARLY_SECONDS", _non_negative_float,
           DEFAULT_EARLY_SECONDS, f"{DEFAULT_EARLY_SECONDS:g}",
           "every this much event time, open windows already anomalous are reported early, "
           "marked provisional (0: never)", "S"),
    Option("idle_seconds", "--idle-seconds", "DETECTOR_IDLE_SECONDS", _non_negative_float,
           DEFAULT_IDLE_SECONDS, f"{DEFAULT_IDLE_SECONDS:g}",
           "after this long without a message the watermark follows the wall clock, so "
           "windows close at night (0: never)", "S"),
    Option("log_level", "--log-level", "DETECTOR_LOG_LEVEL", _level, "INFO", "info",
           "debug, info, warning or error (JSON lines on stderr)", "LEVEL"),
    Option("suppressions", "--suppressions", "DETECTOR_SUPPRESSIONS", str, None, "none",
           "suppression rules: a YAML file or s3://bucket/key, re-read between batches when it "
           "changes (docs/operator-loop.md)", "FILE"),
    Option("suppressions_audit", "--suppressions-audit", "DETECTOR_SUPPRESSIONS_AUDIT", Path, None,
           "suppressed.jsonl in the state directory",
           "JSON Lines file each suppressed finding is written to, with the rule that hid it",
           "FILE"),
    Option("shadow", "--shadow", "DETECTOR_SHADOW", _yes_no, False, "false",
           "shadow mode: run everything, but send findings only to the shadow sink (the findings "
           "queue, file, Security Hub and bus are left alone)", "BOOL", bare="true"),
    Option("shadow_findings_file", "--shadow-findings-file", "DETECTOR_SHADOW_FINDINGS_FILE",
           Path, None, "shadow-findings.jsonl in the state directory, unless a shadow queue is "
           "given", "in shadow mode, append findings (native JSON) to this file", "FILE"),
    Option("shadow_findings_queue_url", "--shadow-findings-queue-url",
           "DETECTOR_SHADOW_FINDINGS_QUEUE_URL", _url, None, "none",
           "in shadow mode, send findings (native JSON) to this SQS queue", "URL"),
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
    model_dir: Path | str = field(default_factory=_default_model_dir)
    model_poll_seconds: float = 60.0
    state_dir: str | Path = DEFAULT_STATE_DIR
    state_kms_key: str | None = None
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
    allowed_lateness: float = DEFAULT_ALLOWED_LATENESS_SECONDS
    early_seconds: float = DEFAULT_EARLY_SECONDS
    idle_seconds: float = DEFAULT_IDLE_SECONDS
    log_level: str = "INFO"
    sigma_rules: tuple[str, ...] = ()
    suppressions: str | None = None
    suppressions_audit: Path | None = None
    shadow: bool = False
    shadow_findings_file: Path | None = None
    shadow_findings_queue_url: str | None = None
    region: str = DEFAULT_REGION
    endpoint_url: str | None = None
    s3_endpoint_url: str | None = None  # for s3:// state (moto, a VPC endpoint)
    kinesis_endpoint_url: str | None = None

    @property
    def kinesis_stream(self) -> str | None:
        """The stream name when the source is ``kinesis://STREAM``."""
        if self.source is None or not self.source.startswith(KINESIS_SCHEME):
            return None
        return self.source[len(KINESIS_SCHEME) :].strip("/")

    @property
    def local_state_dir(self) -> Path | None:
        """The state directory when the state is on local disk (None for s3:// state)."""
        return None if str(self.state_dir).startswith("s3://") else Path(self.state_dir)

    @property
    def audit_file(self) -> Path:
        """Where suppressed findings are written."""
        if self.suppressions_audit is not None:
            return self.suppressions_audit
        assert self.local_state_dir is not None  # __post_init__ asks for the flag otherwise
        return self.local_state_dir / "suppressed.jsonl"

    @property
    def shadow_file(self) -> Path | None:
        """The shadow mode's findings file (None: a shadow queue alone was given)."""
        if self.shadow_findings_file is not None or self.shadow_findings_queue_url is not None:
            return self.shadow_findings_file
        assert self.local_state_dir is not None  # __post_init__ asks for a sink otherwise
        return self.local_state_dir / "shadow-findings.jsonl"

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
        if self.local_state_dir is None:
            # With the state in S3 there is no local folder to default the audit and shadow
            # files to: a pod's disk does not survive it, so they are asked for by name.
            if self.suppressions is not None and self.suppressions_audit is None:
                raise ConfigError(
                    "the state is in S3: give the suppression audit file with "
                    "--suppressions-audit (DETECTOR_SUPPRESSIONS_AUDIT) on a lasting volume"
                )
            if self.shadow and not (self.shadow_findings_file or self.shadow_findings_queue_url):
                raise ConfigError(
                    "the state is in S3: give shadow mode's sink with --shadow-findings-file or "
                    "--shadow-findings-queue-url (DETECTOR_SHADOW_FINDINGS_*)"
                )
        if self.shadow:
            return  # findings go to the shadow sink only, whatever else is configured
        if self.shadow_findings_file or self.shadow_findings_queue_url:
            raise ConfigError(
                "a shadow sink (--shadow-findings-file, --shadow-findings-queue-url) is used "
                "only in shadow mode: add --shadow (DETECTOR_SHADOW=true)"
            )
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
    s3_endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or None
    kinesis = environ.get("AWS_ENDPOINT_URL_KINESIS") or environ.get("AWS_ENDPOINT_URL") or None
    return ServiceSettings(
        **values,
        region=region,
        endpoint_url=endpoint,
        s3_endpoint_url=s3_endpoint,
        kinesis_endpoint_url=kinesis,
    )


def options_table(options: Sequence[Option] = OPTIONS) -> str:
    """The Markdown table of flags, variables and defaults (for the docs)."""
    rows = ["| flag | variable | default | meaning |", "|---|---|---|---|"]
    rows += [
        f"| `{o.flag} {o.metavar}` | `{o.env}` | {o.default_text} | {o.help} |" for o in options
    ]
    return "\n".join(rows)
