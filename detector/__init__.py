"""CloudTrail anomaly detector.

Data flows ingest -> events -> features -> scoring -> findings; the service and the CLI wire
the stages together. Every stage but the edges (ingest, sinks, service runtime, CLI) is a pure
function of its inputs.
"""

__version__ = "0.1.0"
