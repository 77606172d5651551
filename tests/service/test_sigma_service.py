"""Sigma rules in the service and in replay: the same events streamed through `detector run`
(SQS on a moto server) and replayed from an archive of envelopes give the same Sigma findings;
the service reports how many rules it loaded and refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.cli import main
from detector.errors import ConfigError
from detector.synthetic import write_envelopes
from tests.integration.moto_support import SqsAdmin
from tests.service.conftest import Stream
from tests.service.moto_helpers import feed, wait_until
from tests.service.test_service_moto import aws_environment, running, settings_for

__all__ = ["aws_environment"]  # the autouse fixture: credentials the standard way

LOGGING_CHANGED = """
title: Trail changed (test)
id: 5f0a8f53-7b7e-4a8e-9a51-1d0c2f8e4b10
logsource: {product: aws, service: cloudtrail}
detection:
    selection:
        eventSource: cloudtrail.amazonaws.com
        eventName: [StopLogging, UpdateTrail, PutEventSelectors, DeleteTrail]
    condition: selection
level: high
tags: [attack.t1562.008]
"""
READS = """
title: Reads by anyone (test)
id: 0c6b6f7e-2d59-4b1a-8d0e-6a7c1f2b3e40
logsource: {product: aws, service: cloudtrail}
detection:
    selection:
        eventName|startswith: [Get, List, Describe]
    condition: selection
level: low
"""
UNCOMPILABLE = """
title: Keyword search (test)
id: 9d3e1a2b-4c5d-4e6f-8a7b-1c2d3e4f5a60
logsource: {product: aws, service: cloudtrail}
detection:
    keywords: [evil]
    condition: keywords
level: low
"""


def write_rules(folder: Path) -> Path:
    folder.mkdir()
    for name, text in (("a.yml", LOGGING_CHANGED), ("b.yml", READS), ("c.yml", UNCOMPILABLE)):
        (folder / name).write_text(text)
    return folder


def sigma_ids(path: Path) -> set[str]:
    findings = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return {f["finding_id"] for f in findings if f["kind"].startswith("sigma:")}


async def test_sigma_findings_are_the_same_streamed_and_replayed(
    sqs_admin: SqsAdmin,
    short_stream: Stream,
    attack_morning: list[dict[str, Any]],
    trained_model_dir: Path,
    tmp_path: Path,
) -> None:
    rules = write_rules(tmp_path / "rules")
    input_url = await sqs_admin.create_queue("detector-input", visibility_timeout=5)
    settings = settings_for(
        sqs_admin.endpoint_url,
        input_url,
        tmp_path,
        trained_model_dir,
        sigma_rules=(str(rules),),
    )
    async with running(settings) as run:
        await feed(sqs_admin, input_url, short_stream.bodies)

        async def all_processed() -> bool:
            return run.metrics.value("detector_messages_processed_total") >= len(short_stream)

        await wait_until(all_processed, 30, "every event processed and deleted")
    assert run.exit_code == 0
    assert run.metrics.value("detector_sigma_rules", {"state": "loaded"}) == 2
    assert run.metrics.value("detector_sigma_rules", {"state": "refused"}) == 1
    streamed = sigma_ids(tmp_path / "findings.jsonl")

    ids = set(short_stream.event_ids)
    write_envelopes([r for r in attack_morning if r["eventID"] in ids], tmp_path / "live.jsonl")
    replay = [
        "replay", str(tmp_path / "live.jsonl"), "--model", str(trained_model_dir),
        "--sigma-rules", str(rules), "--out", str(tmp_path / "replayed.jsonl"),
    ]  # fmt: skip
    assert await asyncio.to_thread(main, replay) == 0
    replayed = sigma_ids(tmp_path / "replayed.jsonl")

    kinds = {
        orjson.loads(line)["kind"]
        for line in (tmp_path / "replayed.jsonl").read_bytes().splitlines()
    }
    assert {
        "sigma:5f0a8f53-7b7e-4a8e-9a51-1d0c2f8e4b10",
        "sigma:0c6b6f7e-2d59-4b1a-8d0e-6a7c1f2b3e40",
    } <= kinds
    assert streamed == replayed


def test_sigma_rules_are_repeatable_flags_or_a_comma_separated_variable() -> None:
    import argparse

    from detector.service import add_run_arguments, resolve_settings

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    queue = "https://sqs.eu-west-1.amazonaws.com/111122223333/in"
    base = ["--queue-url", queue, "--findings-file", "f.jsonl"]
    flags = vars(parser.parse_args([*base, "--sigma-rules", "a", "--sigma-rules", "s3://b/p"]))
    environ = {"DETECTOR_SIGMA_RULES": "x, s3://y/z"}
    assert resolve_settings(flags, environ).sigma_rules == ("a", "s3://b/p")
    from_variable = resolve_settings(vars(parser.parse_args(base)), environ)
    assert from_variable.sigma_rules == ("x", "s3://y/z")
    assert resolve_settings(vars(parser.parse_args(base)), {}).sigma_rules == ()


async def test_a_missing_rules_folder_is_a_start_up_error_naming_it(
    sqs_admin: SqsAdmin, trained_model_dir: Path, tmp_path: Path
) -> None:
    input_url = await sqs_admin.create_queue("detector-input")
    missing = tmp_path / "no-rules"
    settings = settings_for(
        sqs_admin.endpoint_url, input_url, tmp_path, trained_model_dir, sigma_rules=(str(missing),)
    )
    with pytest.raises(ConfigError, match=f"{missing} is not a folder"):
        async with running(settings):
            pass
