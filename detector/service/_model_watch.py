"""Model roll-out without a restart: the service follows a registry pointer.

``detector run --model s3://bucket/prefix/models/current`` loads the version the pointer names
(see :mod:`detector.registry`). A :class:`ModelWatcher` then reads the pointer every
``model_poll_seconds`` (processing time) in a task of its own; when it names another version
(:func:`~detector.registry.reload_decision`), the watcher downloads it into the state
directory and verifies it exactly as at start-up (hashes, feature schema, trusted types,
signature) and checks its window matches the running features'. A verified model waits in
the watcher until the consumer takes it between two batches (:meth:`ModelWatcher.take`) and
:func:`swap_model` puts it in; a refused one is logged and counted
(``detector_model_reload_failures_total{reason="verification"}``), the running model keeps
scoring, and that pointer revision is not fetched again (promote the version again to retry).

:func:`swap_model` keeps the whole pipeline state (features, profiles, own baselines, learning
periods, detections' memory, open aggregates): only the live threshold restarts from the new
model's, because it is a histogram of the old model's scores.

Imports: the standard library, and the detector's pipeline, registry, scoring and this
package's logging and metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Final

from detector.errors import DetectorError, ModelError
from detector.pipeline import Pipeline, PipelineState
from detector.registry import ModelRegistry, reload_decision
from detector.scoring import CalibrationBounds, LiveThreshold, ModelArtifact, ModelSigning
from detector.service._logging import fields
from detector.service._model_metrics import ModelMetrics

__all__ = ["DEFAULT_MODEL_POLL_SECONDS", "ModelWatcher", "swap_model"]

DEFAULT_MODEL_POLL_SECONDS: Final = 60.0
_KEPT_VERSIONS: Final = 3  # fetched versions kept in the cache folder

_log = logging.getLogger("detector.service")


def swap_model(
    pipeline: Pipeline, state: PipelineState, artifact: ModelArtifact
) -> tuple[Pipeline, PipelineState]:
    """The pipeline on ``artifact`` and the state carried over (only the live threshold
    restarts from the new model's); ``ValueError`` if its window differs."""
    swapped = Pipeline(artifact, detections=pipeline.detections, config=pipeline.config)
    if swapped.artifact.feature_names != pipeline.artifact.feature_names:
        raise ValueError("the new model's features differ from the running one's")
    live = LiveThreshold.initial(CalibrationBounds.from_manifest(artifact.manifest))
    return swapped, dataclasses.replace(state, calibration=live)


class ModelWatcher:
    """Follows ``pointer`` in ``registry``; verified versions wait for :meth:`take`."""

    def __init__(
        self,
        registry: ModelRegistry,
        cache: Path,
        *,
        signing: ModelSigning | None = None,
        metrics: ModelMetrics | None = None,
        poll_seconds: float = DEFAULT_MODEL_POLL_SECONDS,
    ) -> None:
        self.registry = registry
        self.cache = cache
        self.signing = signing
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        self.version: str | None = None  # the newest accepted (running or waiting)
        self._window: timedelta | None = None
        self._pending: ModelArtifact | None = None
        self._refused_revision: str | None = None

    @property
    def where(self) -> str:
        return f"{self.registry.url}/{self.registry.pointer_name}"

    async def initial(self) -> ModelArtifact:
        """The version the pointer names, verified; a :class:`ModelError` if there is none or
        it fails verification (the service cannot start without a model)."""
        pointer, _ = await self.registry.pointer()
        if pointer is None:
            raise ModelError(
                f"{self.where}: no model promoted yet: publish one with `detector train --out "
                f"{self.registry.url}` and `detector models promote`"
            )
        artifact = await self.registry.load(pointer.version, self.cache, self.signing)
        self.version = artifact.version
        self._window = artifact.window
        return artifact

    def take(self) -> ModelArtifact | None:
        """The verified version waiting to be swapped in (once), or None."""
        artifact, self._pending = self._pending, None
        return artifact

    async def poll_once(self) -> str:
        """Read the pointer and act on it; returns the decision (``keep``, ``load``,
        ``refused before``, ``refused`` or ``unreachable``)."""
        assert self.version is not None, "initial() first"
        try:
            pointer, revision = await self.registry.pointer()
        except DetectorError as err:
            self._count("unreachable")
            _log.warning(
                "model pointer unreadable: the running model keeps scoring",
                extra=fields(pointer=self.where, error=str(err), model_version=self.version),
            )
            return "unreachable"
        pointed = None if pointer is None else pointer.version
        decision = reload_decision(pointed, revision, self.version, self._refused_revision)
        if decision != "load":
            return decision
        assert pointed is not None
        try:
            artifact = await self.registry.load(pointed, self.cache, self.signing)
            if artifact.window != self._window:
                raise ModelError(
                    f"{pointed}: {artifact.window} windows, the running features use "
                    f"{self._window}: restart the service to change the window"
                )
        except DetectorError as err:
            self._refused_revision = revision
            self._count("verification")
            _log.error(
                "model refused: the running model keeps scoring",
                extra=fields(
                    pointer=self.where, refused=pointed, model_version=self.version, error=str(err)
                ),
            )
            shutil.rmtree(self.cache / pointed, ignore_errors=True)
            return "refused"
        self._pending = artifact
        self.version = artifact.version
        _log.info(
            "model verified: swapped in before the next batch",
            extra=fields(pointer=self.where, model_version=artifact.version),
        )
        self._prune(keep={artifact.version})
        return "load"

    async def run(self, stopped: asyncio.Event) -> None:
        """Poll every ``poll_seconds`` until ``stopped`` is set."""
        while not stopped.is_set():
            try:
                async with asyncio.timeout(self.poll_seconds):
                    await stopped.wait()
                return
            except TimeoutError:
                pass
            try:
                await self.poll_once()
            except Exception:  # a poll must never take the service down
                _log.exception("model poll failed", extra=fields(pointer=self.where))

    def _count(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.reload_failures.labels(reason=reason).inc()

    def _prune(self, keep: set[str]) -> None:
        """Drop all but the newest few fetched versions from the cache folder."""
        if not self.cache.is_dir():
            return
        folders = sorted(
            (p for p in self.cache.iterdir() if p.is_dir() and p.name not in keep),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in folders[_KEPT_VERSIONS - 1 :]:
            shutil.rmtree(old, ignore_errors=True)
