"""The service's Prometheus metrics, in a registry of its own (never the global one).

Counters and histograms a person watches: messages received / processed / failed / bound for
the DLQ, late events, findings by severity, batch latency, queue lag (now - event time) and
time to detect (``detector_finding_latency_seconds{family}``, with early reports and idle
watermark advances beside it),
bugs apart from bad input (detections that raised, by detection; pipeline steps that raised),
plus what the consumer does with its held messages (checkpoints, heartbeats, releases,
backpressure).

The model's own (version, reloads, drift, budget) are in
:mod:`detector.service._model_metrics`.

Imports: numpy, prometheus_client and this package's model metrics.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from detector.service._model_metrics import ModelMetrics

__all__ = ["BulkHistogram", "ServiceMetrics"]

_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Time to detect: a signature finding within a batch (seconds), a model finding within its
# window plus the allowed lateness (minutes); the targets are 30 s and 2 min (docs/latency.md).
_DETECT_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0)
_LAG_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 21600.0)


class BulkHistogram(Collector):
    """A histogram fed a whole array at once: one per-event observation costs nothing per
    event in Python (``prometheus_client.Histogram`` takes one value per call)."""

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = np.asarray(buckets, dtype=np.float64)
        self._counts = np.zeros(len(buckets) + 1, dtype=np.int64)  # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe(self, value: float) -> None:
        self.observe_many(np.asarray([value], dtype=np.float64))

    def observe_many(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        slots = np.searchsorted(self._bounds, values, side="left")  # value <= bound
        counts = np.bincount(slots, minlength=self._counts.size)
        with self._lock:
            self._counts += counts
            self._sum += float(values.sum())

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            cumulative = np.cumsum(self._counts)
            total = self._sum
        bounds = [repr(float(b)) for b in self._bounds] + ["+Inf"]
        yield HistogramMetricFamily(
            self._name,
            self._documentation,
            buckets=[(b, float(c)) for b, c in zip(bounds, cumulative, strict=True)],
            sum_value=total,
        )


class ServiceMetrics:
    """One instance per service; tests read values back through :meth:`value`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages_received = Counter(
            "detector_messages_received", "SQS messages received", registry=r
        )
        self.messages_processed = Counter(
            "detector_messages_processed", "SQS messages processed and deleted", registry=r
        )
        self.messages_failed = Counter(
            "detector_messages_failed",
            "messages that could not be parsed (left for the DLQ)",
            registry=r,
        )
        self.messages_dlq_bound = Counter(
            "detector_messages_dlq_bound",
            "failed messages at their last receive before the redrive policy moves them",
            registry=r,
        )
        self.messages_released = Counter(
            "detector_messages_released",
            "messages handed back to the queue unprocessed (shutdown, failed checkpoint)",
            registry=r,
        )
        self.messages_delete_failed = Counter(
            "detector_messages_delete_failed",
            "deletes refused (stale receipt handle, ...): the message comes back and dedups",
            registry=r,
        )
        self.visibility_extended = Counter(
            "detector_visibility_extended",
            "visibility-timeout heartbeats (ChangeMessageVisibility entries) that succeeded",
            registry=r,
        )
        self.visibility_lost = Counter(
            "detector_visibility_lost",
            "held messages whose heartbeat failed (receipt expired: redelivered elsewhere)",
            registry=r,
        )
        self.receive_errors = Counter(
            "detector_receive_errors",
            "receives that failed after the adapter's retries",
            registry=r,
        )
        self.events_processed = Counter(
            "detector_events_processed", "CloudTrail events processed", registry=r
        )
        self.events_duplicate = Counter(
            "detector_events_duplicate", "events dropped as already seen (eventID)", registry=r
        )
        self.events_late = Counter(
            "detector_events_late", "events later than the allowed lateness", registry=r
        )
        self.findings = Counter("detector_findings", "findings sent", ["severity"], registry=r)
        self.sink_failures = Counter(
            "detector_sink_finding_failures",
            "findings a sink reported as not delivered, each time (retried, or the batch is "
            "sent again: never dropped)",
            ["sink"],
            registry=r,
        )
        self.findings_send_failures = Counter(
            "detector_findings_send_failures",
            "micro-batches whose findings could not be delivered (retried)",
            registry=r,
        )
        self.step_failures = Counter(
            "detector_step_failures",
            "pipeline steps that raised (a bug, not bad input): the batch is handed back undeleted",
            registry=r,
        )
        self.detection_errors = Counter(
            "detector_detection_errors",
            "detections that raised on a batch; the batch went on without them",
            ["detection"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "detector_batch_seconds",
            "micro-batch processing time",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_lag_seconds = BulkHistogram(
            "detector_queue_lag_seconds", "now minus event time, per event", _LAG_BUCKETS, r
        )
        self.finding_latency_seconds = Histogram(
            "detector_finding_latency_seconds",
            "time to detect: a finding's first report (created_at) minus when its first event "
            "reached the detector (received_at), by family (model, detection)",
            ["family"],
            buckets=_DETECT_BUCKETS,
            registry=r,
        )
        self.early_reports = Counter(
            "detector_early_reports",
            "provisional findings sent for model windows still open (docs/latency.md)",
            registry=r,
        )
        self.idle_advances = Counter(
            "detector_idle_watermark_advances",
            "times the watermark moved with the wall clock while the queue was idle",
            registry=r,
        )
        self.checkpoints = Counter("detector_checkpoints", "state checkpoints written", registry=r)
        self.checkpoint_failures = Counter(
            "detector_checkpoint_failures",
            "state checkpoints that failed (messages stay held, undeleted)",
            registry=r,
        )
        self.checkpoint_seconds = Histogram(
            "detector_checkpoint_seconds",
            "time to snapshot and save the state",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "detector_messages_in_flight", "messages held, not yet deleted", registry=r
        )
        self.principals_learning = Gauge(
            "detector_principals_learning",
            "principals in their learning period: the model does not report them yet",
            registry=r,
        )
        self.model_threshold = Gauge(
            "detector_model_threshold",
            "the model's live threshold (follows the alert budget within the artifact's bounds)",
            registry=r,
        )
        self.receive_paused = Gauge(
            "detector_receive_paused",
            "1 while receiving is paused (too many held messages or scoring behind)",
            registry=r,
        )

        self.sigma_rules = Gauge(
            "detector_sigma_rules",
            "Sigma rules loaded and refused at start-up",
            ["state"],
            registry=r,
        )

        self.findings_suppressed = Counter(
            "detector_findings_suppressed",
            "findings a suppression rule kept from the sinks (written to the audit file)",
            ["rule"],
            registry=r,
        )
        self.suppression_rules = Gauge(
            "detector_suppression_rules", "suppression rules in force", registry=r
        )
        self.suppression_reload_failures = Counter(
            "detector_suppression_reload_failures",
            "changed suppression files that could not be used (the rules in force were kept)",
            registry=r,
        )
        self.shadow_mode = Gauge(
            "detector_shadow_mode",
            "1 in shadow mode: findings go only to the shadow sink",
            registry=r,
        )

        self.model = ModelMetrics(r)  # version, reloads, drift and the alert budget

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of a sample, 0.0 when absent (for tests and the demo summary)."""
        found = self.registry.get_sample_value(name, labels or {})
        return 0.0 if found is None else found
