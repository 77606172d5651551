"""The moto-server fixtures of ``tests/integration`` for the registry's S3 tests."""

from tests.integration.conftest import moto_endpoint, moto_server

__all__ = ["moto_endpoint", "moto_server"]
