"""The long-running service: SQS in, findings out, state checkpointed (``detector run``).

- :class:`Consumer`: the core. Receives micro-batches, runs the pipeline, sends findings,
  checkpoints the state and only then deletes; poison is left for the dead-letter queue.
  Every decision is a rule of :class:`ConsumerConfig` (``_policy``), testable on the in-memory
  queue with a manual clock; held messages are tracked by the :class:`Ledger`.
- :class:`ServiceMetrics`, :class:`Health`, :class:`OpsServer`: ``/metrics``, ``/healthz`` and
  ``/readyz`` on one port.
- :func:`configure_logging`: one JSON object per line on stderr.
- :class:`ServiceRuntime`, :func:`run_command`: the thin runtime of ``detector run`` (SQS
  clients, the state directory, sinks, the ops port, signals), configured by
  :class:`ServiceSettings`, whose flags and ``DETECTOR_*`` variables are listed once in
  :data:`OPTIONS` (:func:`add_run_arguments` gives them to argparse).

Names load on first use, so that building the CLI's parser does not import polars and
scikit-learn. Imports: the detector's packages; I/O only in the runtime and through the ports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from detector._lazy import lazy_names

if TYPE_CHECKING:
    from detector.service._consumer import Consumer, ConsumerCounts, DrainReport
    from detector.service._decode import DecodedMessages, decode_batch
    from detector.service._http import Health, OpsServer
    from detector.service._ledger import HeldMessage, Ledger, Phase
    from detector.service._logging import JsonFormatter, configure_logging, fields
    from detector.service._metrics import ServiceMetrics
    from detector.service._policy import DEFAULT_GRACE_SECONDS, ConsumerConfig
    from detector.service._runtime import ServiceRuntime, load_model, run_command
    from detector.service._settings import (
        OPTIONS,
        Option,
        ServiceSettings,
        add_run_arguments,
        options_table,
        resolve_settings,
    )

_HOMES = {
    "_consumer": ("Consumer", "ConsumerCounts", "DrainReport"),
    "_decode": ("DecodedMessages", "decode_batch"),
    "_http": ("Health", "OpsServer"),
    "_ledger": ("HeldMessage", "Ledger", "Phase"),
    "_logging": ("JsonFormatter", "configure_logging", "fields"),
    "_metrics": ("ServiceMetrics",),
    "_policy": ("DEFAULT_GRACE_SECONDS", "ConsumerConfig"),
    "_runtime": ("ServiceRuntime", "load_model", "run_command"),
    "_settings": (
        "OPTIONS",
        "Option",
        "ServiceSettings",
        "add_run_arguments",
        "options_table",
        "resolve_settings",
    ),
}

__all__ = [
    "DEFAULT_GRACE_SECONDS",
    "OPTIONS",
    "Consumer",
    "ConsumerConfig",
    "ConsumerCounts",
    "DecodedMessages",
    "DrainReport",
    "Health",
    "HeldMessage",
    "JsonFormatter",
    "Ledger",
    "OpsServer",
    "Option",
    "Phase",
    "ServiceMetrics",
    "ServiceRuntime",
    "ServiceSettings",
    "add_run_arguments",
    "configure_logging",
    "decode_batch",
    "fields",
    "load_model",
    "options_table",
    "resolve_settings",
    "run_command",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
