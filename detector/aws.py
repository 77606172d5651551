"""What every AWS client the detector opens shares: explicit credentials, when given.

Imports: the standard library only (the archive, state, ingest and sinks packages all use it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["StaticCredentials", "client_credentials"]


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """Explicit credentials (tests, moto, S3-compatible stores); omit them to use the default
    AWS credential chain (IRSA, a profile, the instance's role)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def client_credentials(credentials: StaticCredentials | None) -> dict[str, str | None]:
    """The keyword arguments of botocore's ``create_client`` for ``credentials`` (none: the
    default chain)."""
    if credentials is None:
        return {}
    return {
        "aws_access_key_id": credentials.access_key_id,
        "aws_secret_access_key": credentials.secret_access_key,
        "aws_session_token": credentials.session_token,
    }
