"""The service package's public names are the intended ones, and each resolves."""

from __future__ import annotations

import subprocess
import sys

import detector.service as service

INTENDED = {
    "DEFAULT_GRACE_SECONDS",
    "OPTIONS",
    "Consumer",
    "ConsumerConfig",
    "ConsumerCounts",
    "DecodedMessages",
    "DrainReport",
    "Health",
    "HeldMessage",
    "JsonFormatter",
    "Ledger",
    "OpsServer",
    "Option",
    "Phase",
    "ServiceMetrics",
    "ServiceRuntime",
    "ServiceSettings",
    "add_run_arguments",
    "configure_logging",
    "decode_batch",
    "fields",
    "load_model",
    "options_table",
    "resolve_settings",
    "run_command",
}


def test_public_names_are_the_intended_ones() -> None:
    assert set(service.__all__) == INTENDED
    for name in service.__all__:
        assert getattr(service, name) is not None


def test_building_the_cli_parser_does_not_import_the_heavy_stack() -> None:
    code = (
        "import sys; from detector.cli import _parser; _parser(); "
        "print(sorted(m for m in ('polars', 'sklearn', 'aiobotocore') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
