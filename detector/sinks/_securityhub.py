"""A findings sink that imports findings into AWS Security Hub (BatchImportFindings, ASFF).

Each finding becomes the ASFF document of :func:`detector.findings.finding_to_asff` for the
account and region that import it (the custom integration's ProductArn). Up to 100 findings go
in one call; findings Security Hub reports in ``FailedFindings`` are logged, counted
(``on_failures``) and retried alone when retrying can help, and a finding still not imported
makes ``send`` raise :class:`SinkError`, so the service does not checkpoint and sends it
again. Re-sending is safe: Security Hub keys findings on (ProductArn, Id), and Id is the
finding id, so a repeat updates the one finding instead of adding another.

Imports: the standard library, aiobotocore (through ``_aws``), detector.findings and
detector.ingest.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any, Final

from detector.findings import finding_from_json, finding_to_asff
from detector.ingest import DEFAULT_RETRY_POLICY, RetryPolicy, Sleep
from detector.sinks._aws import (
    AwsConfig,
    AwsSink,
    ItemFailure,
    open_client,
    retryable_code,
)
from detector.sinks._port import FindingMessage, SinkError

__all__ = ["MAX_IMPORT_BATCH", "SecurityHubFindingSink", "asff_documents"]

MAX_IMPORT_BATCH: Final = 100  # BatchImportFindings' limit


def asff_documents(
    findings: Sequence[FindingMessage], *, account_id: str, region: str
) -> list[dict[str, Any]]:
    """The ASFF documents of native finding messages (a finding that is not one: SinkError)."""
    documents = []
    for message in findings:
        try:
            finding = finding_from_json(message.body)
        except ValueError as err:
            raise SinkError(
                f"finding {message.finding_id} cannot be read for Security Hub: {err}",
                [message.finding_id],
            ) from None
        documents.append(finding_to_asff(finding, account_id=account_id, region=region))
    return documents


class SecurityHubFindingSink(AwsSink):
    """Imports findings into Security Hub through ``client`` (an aiobotocore securityhub
    client, or anything with its ``batch_import_findings``); see the module docstring."""

    def __init__(
        self,
        client: Any,
        *,
        account_id: str,
        region: str,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        on_failures: Callable[[int], None] | None = None,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        stack: AsyncExitStack | None = None,
    ) -> None:
        super().__init__(
            client, retry=retry, on_failures=on_failures, rng=rng, sleep=sleep, stack=stack
        )
        self.account_id = account_id
        self.region = region

    @classmethod
    async def open(
        cls,
        config: AwsConfig,
        *,
        account_id: str | None = None,
        on_failures: Callable[[int], None] | None = None,
    ) -> SecurityHubFindingSink:
        """A sink with its own client; the account (for the ProductArn) is the caller's, asked
        of STS unless given."""
        stack = AsyncExitStack()
        try:
            client = await open_client("securityhub", config, stack)
            if account_id is None:
                sts = await open_client("sts", config, stack)
                account_id = str((await sts.get_caller_identity())["Account"])
        except BaseException:
            await stack.aclose()
            raise
        return cls(
            client,
            account_id=account_id,
            region=config.region,
            retry=config.retry,
            on_failures=on_failures,
            stack=stack,
        )

    async def send(self, findings: Sequence[FindingMessage]) -> None:
        if self._closed:
            raise SinkError("the Security Hub sink is closed", [f.finding_id for f in findings])
        if not findings:
            return
        documents = asff_documents(findings, account_id=self.account_id, region=self.region)
        # One document per id per call (the last: a merged finding's latest state).
        last = {doc["Id"]: i for i, doc in enumerate(documents)}
        positions = sorted(last.values())
        ids = [doc["Id"] for doc in documents]

        async def import_batch(batch: Sequence[int]) -> dict[int, ItemFailure]:
            response = await self.client.batch_import_findings(
                Findings=[documents[i] for i in batch]
            )
            by_id = {ids[i]: i for i in batch}
            failures: dict[int, ItemFailure] = {}
            for failed in response.get("FailedFindings", []):
                position = by_id.get(str(failed.get("Id", "")))
                code = str(failed.get("ErrorCode", "Unknown"))
                if position is None:  # no id to match: the whole batch is in doubt
                    return {
                        i: ItemFailure(code, str(failed.get("ErrorMessage", "")), True)
                        for i in batch
                    }
                failures[position] = ItemFailure(
                    code, str(failed.get("ErrorMessage", "")), retryable_code(code)
                )
            return failures

        batches = [
            positions[i : i + MAX_IMPORT_BATCH] for i in range(0, len(positions), MAX_IMPORT_BATCH)
        ]
        await self._deliver("security hub", ids, batches, import_batch)
