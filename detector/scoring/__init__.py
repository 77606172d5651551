"""Scoring: which principal-windows are unusual (the model), and why (signals, explanations).

- :class:`WindowAnomalyModel`: the scikit-learn estimator (isolation forest on ``log1p``
  features); :meth:`~WindowAnomalyModel.anomaly_score` is higher for more anomalous windows;
- :func:`calibrate_threshold`: the threshold for an alert budget (findings per 1,000
  principal-days); :class:`LiveThreshold`: the same budget held on the organisation's own live
  scores, within the artifact's :class:`CalibrationBounds`;
- :class:`LearningConfig`: a principal's learning period, during which the model does not
  report it; :func:`assign_group`: its behavioural peer group;
- :class:`ModelArtifact`, :func:`save_artifact`, :func:`load_artifact`: the verified model
  folder (skops + manifest + peer baseline + card), optionally signed (:class:`ModelSigning`,
  :func:`signing_from_environment`);
- :class:`OwnBaseline`: each principal's running feature mean and variance (state, with
  snapshot/restore), against which a window's deviation is measured;
- :func:`score_windows`: closed windows -> :class:`~detector.findings.Finding` values, one
  ``anomaly_score`` call per batch; the score is the larger of the forest's and the
  own-baseline deviation's, each normalised by its training distribution;
- :data:`SIGNALS`: the named reasons that lead a finding's explanation and raise its severity.

Imports: numpy, polars, scikit-learn, skops, detector.features, detector.findings.
"""

from detector.scoring._artifact import (
    DEFAULT_MODEL_DIR,
    TRUSTED_TYPES,
    ModelArtifact,
    library_versions,
    load_artifact,
    save_artifact,
)
from detector.scoring._baseline import (
    OwnBaseline,
    RowContext,
    deviation_score,
    score_and_learn,
    score_and_update,
)
from detector.scoring._calibrate import (
    DEFAULT_ALERT_BUDGET,
    CalibrationBounds,
    LiveThreshold,
    calibrate_threshold,
    principal_days,
)
from detector.scoring._explain import PeerBaseline, explain_row, fit_peer_baseline
from detector.scoring._learning import LearningConfig
from detector.scoring._model import WindowAnomalyModel, feature_matrix
from detector.scoring._normalise import fit_knots, normalise
from detector.scoring._peers import GROUPS, assign_group
from detector.scoring._score import (
    MODEL_KIND,
    RawScores,
    ScoredBatch,
    ScoringState,
    combine,
    combined_score,
    raw_scores,
    raw_scores_in_context,
    score_windows,
    severity_of,
    signal_weights,
)
from detector.scoring._signals import SIGNALS, Signal, signal_frame
from detector.scoring._signing import ModelSigning, signing_from_environment

__all__ = [
    "DEFAULT_ALERT_BUDGET",
    "DEFAULT_MODEL_DIR",
    "GROUPS",
    "MODEL_KIND",
    "SIGNALS",
    "TRUSTED_TYPES",
    "CalibrationBounds",
    "LearningConfig",
    "LiveThreshold",
    "ModelArtifact",
    "ModelSigning",
    "OwnBaseline",
    "PeerBaseline",
    "RawScores",
    "RowContext",
    "ScoredBatch",
    "ScoringState",
    "Signal",
    "WindowAnomalyModel",
    "assign_group",
    "calibrate_threshold",
    "combine",
    "combined_score",
    "deviation_score",
    "explain_row",
    "feature_matrix",
    "fit_knots",
    "fit_peer_baseline",
    "library_versions",
    "load_artifact",
    "normalise",
    "principal_days",
    "raw_scores",
    "raw_scores_in_context",
    "save_artifact",
    "score_and_learn",
    "score_and_update",
    "score_windows",
    "severity_of",
    "signal_frame",
    "signal_weights",
    "signing_from_environment",
]
