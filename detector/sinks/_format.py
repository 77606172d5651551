"""Findings in the format a queue or file consumer wants: native, OCSF or ASFF.

The service hands sinks findings serialised in the native format; :class:`FormattedFindingSink`
re-renders each body (native -> :class:`~detector.findings.Finding` -> OCSF/ASFF) before
passing it on, keeping the finding id and group, so FIFO deduplication and the delivery
promise are the wrapped sink's, unchanged.

Imports: orjson, detector.findings and this package's port.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal, TypeAlias, get_args

import orjson

from detector.findings import finding_from_json, finding_to_asff, finding_to_ocsf
from detector.sinks._port import FindingMessage, FindingSink, SinkError

__all__ = ["FINDING_FORMATS", "FindingFormat", "FormattedFindingSink", "render"]

FindingFormat: TypeAlias = Literal["native", "ocsf", "asff"]
FINDING_FORMATS: Final[tuple[str, ...]] = get_args(FindingFormat)
_NO_ACCOUNT: Final = "000000000000"


def render(
    message: FindingMessage, form: FindingFormat, *, region: str, account_id: str | None = None
) -> FindingMessage:
    """``message`` (native) in ``form``. ASFF's ProductArn names ``account_id``, else the
    finding's own account."""
    if form == "native":
        return message
    try:
        finding = finding_from_json(message.body)
    except ValueError as err:
        raise SinkError(
            f"finding {message.finding_id} cannot be rendered as {form}: {err}",
            [message.finding_id],
        ) from None
    if form == "ocsf":
        document = finding_to_ocsf(finding)
    else:
        account = account_id or finding.account_id or _NO_ACCOUNT
        document = finding_to_asff(finding, account_id=account, region=finding.region or region)
    return FindingMessage(message.finding_id, message.group, orjson.dumps(document))


class FormattedFindingSink:
    """Passes findings to ``inner`` rendered as ``form``."""

    def __init__(
        self,
        inner: FindingSink,
        form: FindingFormat,
        *,
        region: str = "us-east-1",
        account_id: str | None = None,
    ) -> None:
        self.inner = inner
        self.form = form
        self._region = region
        self._account_id = account_id

    async def send(self, findings: Sequence[FindingMessage]) -> None:
        rendered = [
            render(f, self.form, region=self._region, account_id=self._account_id) for f in findings
        ]
        await self.inner.send(rendered)

    async def close(self) -> None:
        await self.inner.close()
