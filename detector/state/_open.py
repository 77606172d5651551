"""``open_state_store(location)``: the store a location names, a directory or ``s3://``.

Imports: the standard library, botocore (for ``s3://`` only), :mod:`detector.aws`,
:mod:`detector.errors` and this package.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from detector.aws import StaticCredentials, client_credentials
from detector.errors import ConfigError
from detector.state._local import LocalStateStore
from detector.state._port import StateStore

__all__ = ["is_s3_location", "open_state_store"]

_S3_ATTEMPTS = 5  # botocore's "standard" retries: throttling, 5xx, connection errors


def is_s3_location(location: str | os.PathLike[str]) -> bool:
    return str(location).startswith("s3://")


def open_state_store(
    location: str | os.PathLike[str],
    *,
    kms_key_id: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    credentials: StaticCredentials | None = None,
) -> StateStore:
    """A :class:`LocalStateStore` for a directory, an :class:`S3StateStore` for
    ``s3://bucket/prefix`` (written with SSE-KMS under ``kms_key_id`` when given). Nothing is
    read or written until the first ``load`` or ``save``. Raises :class:`ConfigError` for a
    location that names no bucket, or a KMS key given for a directory."""
    if not is_s3_location(location):
        if kms_key_id:
            raise ConfigError(
                f"state {location}: a KMS key id applies to s3:// state only "
                "(encrypt the volume of a local directory instead)"
            )
        return LocalStateStore(Path(location))
    parsed = urlparse(str(location))
    if not parsed.netloc:
        raise ConfigError(f"state location {location!r}: expected s3://bucket/prefix")
    import botocore.session
    from botocore.config import Config

    from detector.state._s3 import S3StateStore

    client = botocore.session.get_session().create_client(
        "s3",
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(retries={"mode": "standard", "max_attempts": _S3_ATTEMPTS}),
        **client_credentials(credentials),
    )
    return S3StateStore(client, parsed.netloc, parsed.path, kms_key_id=kms_key_id)
