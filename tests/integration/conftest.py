"""Fixtures for tests against a real moto server (moto's in-process patching does not reach
aiobotocore, so every integration test talks HTTP to a server on 127.0.0.1).

Use them like this::

    async def test_something(sqs_admin: SqsAdmin) -> None:
        url = await sqs_admin.create_queue("events")          # state is fresh for each test
        async with SqsQueue(sqs_admin.config(url)) as queue:
            ...

- ``moto_server`` (session): one server for the whole run, on a free port; its
  ``endpoint_url`` is the address to give clients.
- ``moto_endpoint`` (function): the same URL, after resetting every moto backend, so tests are
  independent. Depend on it (or on ``sqs_admin``) rather than on ``moto_server``.
- ``sqs_admin`` (function, async): a :class:`~tests.integration.moto_support.SqsAdmin`, a raw
  aiobotocore SQS client for set-up and inspection (creating standard/FIFO queues with a
  dead-letter queue, counting messages), plus ``config(url)`` to build an :class:`SqsConfig`
  with the test credentials. Outside a fixture, ``open_sqs_admin(endpoint_url)`` gives one.
- ``moto_enforcing_auth`` (function): moto refuses unknown credentials during the test.

``moto_endpoint`` resets *every* backend: a module-scoped fixture that sets up moto state once
(e.g. an S3 bucket) must reset and fill it itself, and its tests run together as pytest runs
a module's tests in order. ``fault_proxy.py`` puts a fault-injecting proxy in front of moto.

Credentials and region are passed to clients explicitly (``TEST_CREDENTIALS``, ``REGION``);
nothing here touches ``os.environ``. Keep test queues shallow (< 100 messages): moto's SQS slows
down as a queue grows.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from moto.server import ThreadedMotoServer

from tests.integration.moto_support import MotoServer, SqsAdmin, open_sqs_admin


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    werkzeug_log = logging.getLogger("werkzeug")
    level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)  # one INFO line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()  # port=0 bound a free port; this is the real one
    try:
        yield MotoServer(f"http://{host}:{port}")
    finally:
        server.stop()
        # stop() ends serve_forever but leaves the listening socket open (a ResourceWarning).
        if server._server is not None:
            server._server.server_close()
        werkzeug_log.setLevel(level)


@pytest.fixture
def moto_endpoint(moto_server: MotoServer) -> str:
    moto_server.reset()
    return moto_server.endpoint_url


@pytest.fixture
async def sqs_admin(moto_endpoint: str) -> AsyncIterator[SqsAdmin]:
    async with open_sqs_admin(moto_endpoint) as admin:
        yield admin


@pytest.fixture
def moto_enforcing_auth(moto_server: MotoServer) -> Iterator[MotoServer]:
    """moto checks credentials (unknown access keys are refused) for the test's duration."""
    moto_server.set_auth_after(0)
    try:
        yield moto_server
    finally:
        moto_server.set_auth_after(float("inf"))
