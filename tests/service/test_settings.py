"""``detector run``'s settings: flags over DETECTOR_* variables over documented defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from detector.errors import ConfigError
from detector.scoring import DEFAULT_MODEL_DIR
from detector.service import (
    OPTIONS,
    ServiceSettings,
    add_run_arguments,
    options_table,
    resolve_settings,
)
from detector.service._runtime import consumer_config

QUEUE = "https://sqs.eu-west-1.amazonaws.com/111122223333/detector-input"
FINDINGS = "https://sqs.eu-west-1.amazonaws.com/111122223333/detector-findings"


def parse(*argv: str) -> dict[str, object]:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    return vars(parser.parse_args(argv))


def test_defaults_with_only_the_queues_given() -> None:
    settings = resolve_settings(parse("--queue-url", QUEUE, "--findings-queue-url", FINDINGS), {})
    assert settings == ServiceSettings(
        queue_url=QUEUE, findings_queue_url=FINDINGS, region="eu-west-1"
    )
    assert settings.model_dir == DEFAULT_MODEL_DIR
    assert (settings.metrics_host, settings.metrics_port) == ("0.0.0.0", 9102)
    assert settings.state_dir == Path("detector-state")
    assert settings.visibility_timeout is None  # the queue's own


def test_a_flag_wins_over_its_variable_which_wins_over_the_default() -> None:
    environ = {
        "DETECTOR_QUEUE_URL": QUEUE,
        "DETECTOR_FINDINGS_FILE": "/tmp/findings.jsonl",
        "DETECTOR_METRICS_PORT": "9200",
        "DETECTOR_BATCH_SIZE": "500",
        "DETECTOR_MODEL": "/opt/detector/models/default",
        "DETECTOR_STATE_DIR": "/var/lib/detector",
    }
    settings = resolve_settings(parse("--batch-size", "250"), environ)
    assert settings.queue_url == QUEUE
    assert settings.findings_file == Path("/tmp/findings.jsonl")
    assert settings.metrics_port == 9200
    assert settings.batch_size == 250
    assert settings.model_dir == Path("/opt/detector/models/default")
    assert settings.state_dir == Path("/var/lib/detector")


def test_the_state_may_live_in_s3_with_its_own_endpoint_and_kms_key() -> None:
    environ = {
        "DETECTOR_STATE_DIR": "s3://org-detector-state/prod",
        "DETECTOR_STATE_KMS_KEY": "alias/detector",
        "AWS_ENDPOINT_URL_SQS": "http://sqs.local",
        "AWS_ENDPOINT_URL_S3": "http://s3.local",
    }
    settings = resolve_settings(parse("--queue-url", QUEUE, "--findings-file", "f"), environ)
    assert settings.state_dir == "s3://org-detector-state/prod"  # text: a Path folds the //
    assert settings.state_kms_key == "alias/detector"
    assert (settings.endpoint_url, settings.s3_endpoint_url) == (
        "http://sqs.local",
        "http://s3.local",
    )
    shared = resolve_settings(
        parse("--queue-url", QUEUE, "--findings-file", "f"), {"AWS_ENDPOINT_URL": "http://moto"}
    )
    assert (shared.endpoint_url, shared.s3_endpoint_url) == ("http://moto", "http://moto")


def test_with_the_state_in_s3_the_audit_and_shadow_files_are_named() -> None:
    s3 = {"DETECTOR_STATE_DIR": "s3://org-detector-state/prod"}
    base = ("--queue-url", QUEUE, "--findings-file", "f")
    with pytest.raises(ConfigError, match="--suppressions-audit"):
        resolve_settings(parse(*base, "--suppressions", "rules.yaml"), s3)
    with pytest.raises(ConfigError, match="--shadow-findings-file"):
        resolve_settings(parse(*base, "--shadow"), s3)
    named = resolve_settings(
        parse(*base, "--suppressions", "rules.yaml", "--suppressions-audit", "/audit/s.jsonl"), s3
    )
    assert named.audit_file == Path("/audit/s.jsonl")
    # On local disk they default to the state folder.
    local = resolve_settings(parse(*base, "--suppressions", "rules.yaml"), {})
    assert local.audit_file == Path("detector-state/suppressed.jsonl")


def test_security_hub_or_a_bus_alone_is_somewhere_to_send_findings() -> None:
    hub = resolve_settings(parse("--queue-url", QUEUE, "--security-hub"), {})
    assert (hub.security_hub, hub.event_bus, hub.findings_format) == (True, None, "native")
    bus = resolve_settings(
        parse("--queue-url", QUEUE, "--findings-file", "f", "--findings-format", "OCSF"),
        {"DETECTOR_EVENT_BUS": "security", "DETECTOR_SECURITY_HUB": "false"},
    )
    assert (bus.security_hub, bus.event_bus, bus.findings_format) == (False, "security", "ocsf")


def test_the_standard_aws_variables_are_honoured() -> None:
    base = {
        "DETECTOR_QUEUE_URL": "http://127.0.0.1:5000/123456789012/in",
        "DETECTOR_FINDINGS_FILE": "f",
    }
    settings = resolve_settings(
        {},
        base
        | {"AWS_DEFAULT_REGION": "ap-southeast-2", "AWS_ENDPOINT_URL": "http://127.0.0.1:5000"},
    )
    assert (settings.region, settings.endpoint_url) == ("ap-southeast-2", "http://127.0.0.1:5000")
    settings = resolve_settings(
        {},
        base
        | {
            "AWS_REGION": "eu-north-1",
            "AWS_DEFAULT_REGION": "x",
            "AWS_ENDPOINT_URL": "http://a",
            "AWS_ENDPOINT_URL_SQS": "http://b",
        },
    )
    assert (settings.region, settings.endpoint_url) == ("eu-north-1", "http://b")
    assert resolve_settings({}, base).region == "us-east-1"


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        ((), {}, "--queue-url or set DETECTOR_QUEUE_URL"),
        (("--queue-url", QUEUE), {}, "nowhere to send findings"),
        (("--queue-url", "sqs://nope", "--findings-file", "f"), {}, "--queue-url='sqs://nope'"),
        (
            ("--queue-url", QUEUE, "--findings-file", "f"),
            {"DETECTOR_RECEIVERS": "0"},
            "DETECTOR_RECEIVERS='0'",
        ),
        (
            ("--queue-url", QUEUE, "--findings-file", "f", "--metrics-port", "http"),
            {},
            "--metrics-port",
        ),
        (("--queue-url", QUEUE, "--findings-file", "f", "--log-level", "loud"), {}, "--log-level"),
        (
            ("--queue-url", QUEUE, "--findings-file", "f", "--findings-format", "cef"),
            {},
            "--findings-format='cef'",
        ),
        (("--queue-url", QUEUE), {"DETECTOR_SECURITY_HUB": "maybe"}, "DETECTOR_SECURITY_HUB"),
        (
            ("--queue-url", QUEUE, "--findings-file", "f", "--state-dir", "s3:///state"),
            {},
            "--state-dir='s3:///state': an s3:// location needs a bucket",
        ),
        (
            ("--queue-url", QUEUE, "--findings-file", "f"),
            {"DETECTOR_STATE_DIR": "gs://bucket/state"},
            "DETECTOR_STATE_DIR='gs://bucket/state'",
        ),
        (("--queue-url", QUEUE), {"DETECTOR_SECURITY_HUB": "false"}, "nowhere to send"),
    ],
)
def test_a_bad_setting_names_its_flag_or_variable(
    argv: tuple[str, ...], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        resolve_settings(parse(*argv), environ)


def test_every_setting_has_a_flag_a_variable_and_a_row_in_the_table() -> None:
    table = options_table()
    for option in OPTIONS:
        assert option.flag.startswith("--")
        assert (
            option.env == "DETECTOR_" + option.flag[2:].upper().replace("-", "_")
            or option.env == "DETECTOR_MODEL"
        )
        assert f"`{option.env}`" in table
    names = {o.name for o in OPTIONS} | {
        "region",
        "endpoint_url",
        "s3_endpoint_url",
        "kinesis_endpoint_url",
    }
    assert names == set(ServiceSettings.__dataclass_fields__)


def test_the_consumer_takes_its_visibility_timeout_and_receive_limit_from_the_queue() -> None:
    settings = ServiceSettings(queue_url=QUEUE, findings_file=Path("f"))
    attributes = {
        "VisibilityTimeout": "300",
        "RedrivePolicy": '{"deadLetterTargetArn": "arn:aws:sqs:eu-west-1:1:dlq", "maxReceiveCount": "5"}',
    }
    config = consumer_config(settings, attributes)
    assert (config.visibility_timeout, config.max_receive_count) == (300, 5)
    unknown = consumer_config(settings, {})
    assert (unknown.visibility_timeout, unknown.max_receive_count) == (300, None)
    mine = consumer_config(
        ServiceSettings(
            queue_url=QUEUE, findings_file=Path("f"), visibility_timeout=120, max_receive_count=3
        ),
        attributes,
    )
    assert (mine.visibility_timeout, mine.max_receive_count) == (120, 3)


def test_a_kinesis_source_needs_no_queue_and_names_the_stream_and_the_shard_group() -> None:
    settings = resolve_settings(
        parse("--source", "kinesis://events", "--findings-file", "f"),
        {"DETECTOR_CONSUMER_ORDINAL": "2", "DETECTOR_CONSUMER_COUNT": "3"},
    )
    assert settings.kinesis_stream == "events"
    assert (settings.consumer_ordinal, settings.consumer_count) == (2, 3)
    assert settings.queue_url is None


def test_an_sqs_url_as_the_source_is_the_usual_queue() -> None:
    settings = resolve_settings(parse("--source", QUEUE, "--findings-file", "f"), {})
    assert settings.queue_url == QUEUE
    assert settings.kinesis_stream is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--source", "kinesis://", "--findings-file", "f"), "--source"),
        (("--source", "kinesis://a/b", "--findings-file", "f"), "--source"),
        (
            ("--source", "kinesis://events", "--findings-file", "f", "--consumer-ordinal", "3"),
            "not below --consumer-count",
        ),
    ],
)
def test_a_bad_kinesis_setting_names_its_flag(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_settings(parse(*argv), {})
