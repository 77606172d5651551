"""What ``detector models list|promote|rollback`` and ``detector train --out s3://...`` do.

The edge: opens the registry, reads the clock and the signing key, prints. The work is in
:mod:`detector.registry` and :mod:`detector.training`.

Imports: the standard library and the detector's packages.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from detector.registry import ModelRegistry, Pointer, VersionInfo, open_registry
from detector.scoring import load_artifact, signing_from_environment

__all__ = ["run", "train_to_registry", "versions_table"]


def _endpoint(args: argparse.Namespace) -> str | None:
    return args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or None


def train_to_registry(
    args: argparse.Namespace, train_folder: Callable[[argparse.Namespace, Path], int]
) -> int:
    """Train into a temporary folder, verify it, publish it as ``<name>@<hash>``."""
    named = replace_name(args, args.name or "model")
    with tempfile.TemporaryDirectory(prefix="detector-train-") as tmp:
        folder = Path(tmp) / named.name
        status = train_folder(named, folder)
        if status:
            return status
        artifact = load_artifact(folder, signing_from_environment(os.environ))

        async def publish() -> str:
            async with open_registry(str(args.out), endpoint_url=_endpoint(args)) as registry:
                return await registry.publish(folder, artifact)

        version = asyncio.run(publish())
    print(f"published {version} -> {str(args.out).rstrip('/')}/{version}/")
    print(f"promote it with: detector models promote {args.out} {version}")
    return 0


def replace_name(args: argparse.Namespace, name: str) -> argparse.Namespace:
    copy = argparse.Namespace(**vars(args))
    copy.name = name
    return copy


def versions_table(versions: list[VersionInfo], pointer: Pointer | None) -> str:
    """One line per version: the running one starred, the ones rollback returns to marked."""
    previous = pointer.previous if pointer else ()
    rows = [
        "  version                           trained on                     events    "
        "principals  threshold  findings/1k principal-days (training)"
    ]
    for v in versions:
        mark = "*" if pointer and v.version == pointer.version else " "
        mark = "<" if v.version in previous[:1] else mark
        period = f"{(v.since or '?')[:10]}..{(v.until or '?')[:10]}"
        rows.append(
            f"{mark} {v.version:<33} {period:<30} {v.events or 0:>9,} {v.principals or 0:>11,}"
            f"  {v.threshold if v.threshold is not None else float('nan'):9.5f}"
            f"  {v.findings_per_1000_principal_days if v.findings_per_1000_principal_days is not None else float('nan'):g}"
        )
    if not versions:
        rows.append("  (no versions published)")
    rows.append("(* runs now, < a rollback returns to it)")
    return "\n".join(rows)


async def _run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    async with open_registry(
        args.registry, endpoint_url=_endpoint(args), pointer=args.pointer
    ) as registry:
        if args.models_command == "list":
            pointer, _ = await registry.pointer()
            print(versions_table(await registry.versions(), pointer))
            return 0
        if args.models_command == "promote":
            moved = await registry.promote(args.version, now)
        else:
            moved = await registry.rollback(now)
        _print_move(registry, moved)
    return 0


def _print_move(registry: ModelRegistry, moved: Pointer) -> None:
    before = moved.previous[0] if moved.previous else "none"
    print(
        f"{registry.url}/{registry.pointer_name} -> {moved.version} (previous: {before}); "
        "running services pick it up at their next poll"
    )


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))
