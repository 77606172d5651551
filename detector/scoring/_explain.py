"""Why a window scored high: which features moved most, against whom, with values.

Two baselines, so a person can read a finding without the model:

- **the principal's own**: how far each feature rose above this principal's running mean, in
  standard deviations (:mod:`detector.scoring._baseline`), plus the items its profile never
  saw (new IPs, networks, regions, user agents, API calls, keys) by name;
- **its peers**: the same feature's median over training windows of principals of the same
  ``principal_type`` (on the model's ``log1p`` scale, learned at training time and shipped in
  the artifact as :class:`PeerBaseline`); a principal with little history is judged mostly
  against its peers.

Imports: numpy, polars, the model's transform and the findings record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import polars as pl

from detector.findings import ExplanationItem
from detector.scoring._model import Matrix, transform

__all__ = ["PeerBaseline", "explain_row", "fit_peer_baseline"]

ALL_PEERS: Final = "*"
MIN_SPREAD: Final = 0.25  # on the log1p scale: below this, a feature is treated as constant
TOP_FEATURES: Final = 5


@dataclass(frozen=True, slots=True)
class PeerBaseline:
    """Per principal type (and ``"*"`` for all): median and spread of each feature on the
    model's ``log1p`` scale."""

    feature_names: tuple[str, ...]
    median: Mapping[str, tuple[float, ...]]
    spread: Mapping[str, tuple[float, ...]]

    def to_json(self) -> dict[str, Any]:
        return {
            "feature_names": list(self.feature_names),
            "median": {k: list(v) for k, v in self.median.items()},
            "spread": {k: list(v) for k, v in self.spread.items()},
        }

    @staticmethod
    def from_json(doc: Mapping[str, Any]) -> PeerBaseline:
        return PeerBaseline(
            tuple(doc["feature_names"]),
            {k: tuple(float(x) for x in v) for k, v in doc["median"].items()},
            {k: tuple(float(x) for x in v) for k, v in doc["spread"].items()},
        )

    def of(self, principal_type: str) -> tuple[Matrix, Matrix]:
        key = principal_type if principal_type in self.median else ALL_PEERS
        return np.asarray(self.median[key]), np.asarray(self.spread[key])


def _stats(z: Matrix) -> tuple[tuple[float, ...], tuple[float, ...]]:
    q25, q50, q75 = np.percentile(z, [25, 50, 75], axis=0)
    spread = np.maximum((q75 - q25) / 1.349, MIN_SPREAD)  # IQR as a robust sigma
    return tuple(float(v) for v in q50), tuple(float(v) for v in spread)


def fit_peer_baseline(
    x: Matrix, principal_types: Sequence[str], feature_names: Sequence[str], min_rows: int = 50
) -> PeerBaseline:
    """Median and spread per principal type with at least ``min_rows`` windows, and overall."""
    z = transform(x)
    types = np.asarray(principal_types, dtype=object)
    median: dict[str, tuple[float, ...]] = {}
    spread: dict[str, tuple[float, ...]] = {}
    median[ALL_PEERS], spread[ALL_PEERS] = _stats(z)
    for kind in sorted(set(principal_types)):
        rows = z[types == kind]
        if len(rows) >= min_rows:
            median[kind], spread[kind] = _stats(rows)
    return PeerBaseline(tuple(feature_names), median, spread)


def measured_features(names: Sequence[str]) -> np.ndarray[tuple[int], np.dtype[np.bool_]]:
    """Which features a deviation is measured on and explained by: volumes, rates, shares and
    errors. Not the novelty counts (new IPs, new API calls, ...: already "against its own
    history", judged by the forest and the signals, and named in the explanation) nor the
    profile's age (it only ever grows)."""
    stems = [name.split("_by_principal_", 1)[0] for name in names]
    return np.array([not (s.startswith("new_") or s == "profile_age_hours") for s in stems])


def explain_row(
    x: Matrix,
    z: Matrix,
    usual: Matrix,
    principal_type: str,
    peers: PeerBaseline,
    new_items: Mapping[str, Sequence[str]],
    top: int = TOP_FEATURES,
    *,
    group: str | None = None,
) -> tuple[ExplanationItem, ...]:
    """The features of one window that rose most above the principal's own baseline (``z``,
    with ``usual`` its expected value), largest first, each also set against its peers; then
    the new items by name; last, the behavioural peer group it was judged with (``group``,
    :mod:`detector.scoring._peers`). ``contribution`` is each feature's share of the listed
    deviation."""
    peer_median, _ = peers.of(principal_type)
    # Novelty counts are explained by the new items' names below; the profile's age only grows.
    listed = measured_features(peers.feature_names)
    order = [int(i) for i in np.argsort(-z, kind="stable") if z[i] > 1.0 and listed[i]][:top]
    total = float(sum(z[i] for i in order)) or 1.0
    items = []
    for i in order:
        name = peers.feature_names[i]
        value, own, peer = float(x[i]), float(usual[i]), float(np.expm1(peer_median[i]))
        items.append(
            ExplanationItem(
                what=name,
                value=round(value, 4),
                baseline=round(own, 4),
                detail=(
                    f"{value:.4g} against {own:.3g} usual for this principal "
                    f"({z[i]:.1f} sd above); {peer:.3g} usual for {principal_type} principals"
                ),
                contribution=round(float(z[i]) / total, 4),
            )
        )
    for column, values in new_items.items():
        if values:
            shown = ", ".join(values[:5]) + (" ..." if len(values) > 5 else "")
            items.append(
                ExplanationItem(
                    what=column,
                    value=shown,
                    detail=f"{len(values)} never seen for this principal before: {shown}",
                )
            )
    if group:
        items.append(
            ExplanationItem(
                what="peer_group",
                value=group,
                detail=f"judged with its peer group {group!r} while its own history is short",
            )
        )
    return tuple(items)


def as_frame(peers: PeerBaseline) -> pl.DataFrame:
    """The baseline as a table (for the model card)."""
    return pl.DataFrame(
        {"feature": list(peers.feature_names)}
        | {f"median_{k}": list(np.expm1(v)) for k, v in sorted(peers.median.items())}
    )
