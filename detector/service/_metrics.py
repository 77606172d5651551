"""The service's Prometheus metrics, in a registry of its own (never the global one).

Counters and histograms a person watches: messages received / processed / failed / bound for
the DLQ, late events, findings by severity, batch latency and queue lag (now - event time).

Imports: prometheus_client only.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ServiceMetrics"]

_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LAG_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 21600.0)


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
        self.batch_seconds = Histogram(
            "detector_batch_seconds",
            "micro-batch processing time",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_lag_seconds = Histogram(
            "detector_queue_lag_seconds",
            "now minus event time, per event",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.checkpoints = Counter("detector_checkpoints", "state checkpoints written", registry=r)
        self.in_flight = Gauge(
            "detector_messages_in_flight", "messages held, not yet deleted", registry=r
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of a sample, 0.0 when absent (for tests and the demo summary)."""
        found = self.registry.get_sample_value(name, labels or {})
        return 0.0 if found is None else found
