"""The container image: hadolint, and the contract the Kubernetes manifests rely on.

Docker cannot run here, so nothing is built: the checks are static, except the health check's
command, which is run against a local HTTP server exactly as Docker would run it.
"""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator

import pytest

from .dockerfile_model import Instruction, env_of, final_stage, parse_dockerfile
from .validators import DOCKERFILE, DOCKERIGNORE, REPO_ROOT, run, tool

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE)


def test_hadolint_is_clean() -> None:
    result = run([tool("hadolint"), "--no-color", "--failure-threshold", "style", DOCKERFILE])
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stdout.strip(), result.stdout


def test_both_stages_build_on_python_3_11_slim(instructions: list[Instruction]) -> None:
    bases = [item.arguments.split()[0] for item in instructions if item.keyword == "FROM"]
    assert len(bases) == 2, "multi-stage: a build stage and a runtime stage"
    # Same base twice: the venv copied from the build stage points at the runtime's interpreter.
    assert len(set(bases)) == 1
    assert bases[0].startswith("python:3.11-slim")
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"


def test_runs_as_a_non_root_user(instructions: list[Instruction]) -> None:
    users = [item.arguments for item in final_stage(instructions) if item.keyword == "USER"]
    assert users, "the runtime stage sets USER"
    uid, _, gid = users[-1].partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit(), users[-1]
    assert int(uid) >= 10000, users[-1]
    assert gid.isdigit(), users[-1]
    assert int(gid) > 0, users[-1]


def test_entry_point_is_detector_run(instructions: list[Instruction]) -> None:
    stage = final_stage(instructions)
    (entrypoint,) = [item.exec_form() for item in stage if item.keyword == "ENTRYPOINT"]
    (command,) = [item.exec_form() for item in stage if item.keyword == "CMD"]
    assert [*entrypoint, *command] == ["detector", "run"]
    assert "detector" in PYPROJECT["project"]["scripts"], "the console script the image runs"


def test_state_lives_in_a_volume(instructions: list[Instruction]) -> None:
    stage = final_stage(instructions)
    env = env_of(stage)
    volumes = [item.exec_form() for item in stage if item.keyword == "VOLUME"]
    assert volumes == [[env["DETECTOR_STATE_DIR"]]]
    assert env["DETECTOR_STATE_DIR"] == "/var/lib/detector"
    # The root filesystem is read-only at run time: Python must not try to write .pyc files.
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_no_curl_or_wget_in_the_image(instructions: list[Instruction]) -> None:
    text = " ".join(item.arguments for item in instructions).lower()
    assert "curl" not in text
    assert "wget" not in text


def _healthcheck_command(instructions: list[Instruction]) -> list[str]:
    (check,) = [item for item in final_stage(instructions) if item.keyword == "HEALTHCHECK"]
    _, _, command = check.arguments.partition(" CMD ")
    argv = Instruction("CMD", command).exec_form()
    assert argv[:2] == ["python", "-c"], "the health check uses the image's Python, not curl"
    assert "http://127.0.0.1:" in argv[2]
    assert "/healthz" in argv[2]
    assert "'9102'" in argv[2], "DETECTOR_METRICS_PORT defaults to 9102"
    return [sys.executable, *argv[1:]]


class _HealthHandler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[http.server.ThreadingHTTPServer, type[_HealthHandler]]]:
    handler = type("Handler", (_HealthHandler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server, handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _run_healthcheck(argv: list[str], port: int) -> int:
    env = {**os.environ, "DETECTOR_METRICS_PORT": str(port)}
    return subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False).returncode


def test_healthcheck_passes_on_200_and_fails_otherwise(
    instructions: list[Instruction],
    health_server: tuple[http.server.ThreadingHTTPServer, type[_HealthHandler]],
) -> None:
    argv = _healthcheck_command(instructions)
    server, handler = health_server
    port = server.server_address[1]
    assert _run_healthcheck(argv, port) == 0
    handler.status = 503
    assert _run_healthcheck(argv, port) != 0


def test_healthcheck_fails_when_nothing_listens(instructions: list[Instruction]) -> None:
    argv = _healthcheck_command(instructions)
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert _run_healthcheck(argv, port) != 0


def test_build_context_is_an_allow_list_covering_the_wheel() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "exclude everything, then re-include what the build needs"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    needed = {
        "pyproject.toml",
        PYPROJECT["project"]["readme"],
        "requirements/runtime.lock",
        "detector",
        "models",
    }
    assert needed <= allowed, f"missing from the build context: {needed - allowed}"
    includes = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    assert includes == ["detector*"], "a new top-level package must be allowed into the context"


def test_dependencies_install_from_the_hashed_runtime_lock_only(
    instructions: list[Instruction],
) -> None:
    commands = [
        command.strip()
        for item in instructions
        if item.keyword == "RUN"
        for command in item.arguments.split("&&")
        if "pip install" in command
    ]
    locked = [c for c in commands if "-r requirements/runtime.lock" in c]
    assert locked, "the image's dependencies come from requirements/runtime.lock"
    assert all("--require-hashes" in c for c in locked)
    # Anything else installed (the project's own wheel) must not resolve dependencies again.
    assert all("--no-deps" in c for c in commands if c not in locked), commands
