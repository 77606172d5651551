"""Each principal's own baseline: running mean and variance of its window features.

An isolation forest cannot say "ten times beyond anything seen": a value outside the training
range lands in the same leaf as the most extreme training point. So beside the forest, every
window is compared with *its own principal's* history: per feature, on the model's ``log1p``
scale, ``z = (value - mean) / sqrt(variance + floor^2)``, the mean and variance shrunk towards
the principal's peers while its history is short. The largest positive ``z`` is the window's
deviation score, and the features with the largest ``z`` explain it ("kms_decrypt_calls 429,
usual 11").

State is a value: :func:`score_and_update` returns a new :class:`OwnBaseline` and leaves the old
one as it was (unchanged principals are shared, not copied). Windows are folded in one
``window_start`` at a time, scored against the baseline as it stood before that window start,
so the result does not depend on how closed windows were batched. Late-correction rows are
scored but not learned. Mean and variance are exact (Chan's parallel update), so the order of
windows within one ``window_start`` does not matter either.

Imports: numpy, polars, and this package's model transform and peer baseline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import polars as pl

from detector.scoring._explain import PeerBaseline
from detector.scoring._model import Matrix, transform

__all__ = [
    "OwnBaseline",
    "deviation_score",
    "deviations",
    "score_and_update",
]

PRIOR_WINDOWS: Final = 20.0  # weight of the peer baseline, in windows of own history
SPREAD_FLOOR: Final = 0.25  # on the log1p scale: changes smaller than ~28% never count


@dataclass(frozen=True, slots=True)
class _Stats:
    n: float
    mean: Matrix
    m2: Matrix  # sum of squared deviations from the mean


@dataclass(frozen=True, slots=True)
class OwnBaseline:
    """Per principal: windows seen, feature means and squared-deviation sums (log1p scale)."""

    feature_names: tuple[str, ...]
    stats: Mapping[str, _Stats] = field(default_factory=dict)

    def snapshot(self) -> pl.DataFrame:
        keys = sorted(self.stats)
        return pl.DataFrame(
            {
                "principal_key": keys,
                "n": [self.stats[k].n for k in keys],
                "mean": [self.stats[k].mean.tolist() for k in keys],
                "m2": [self.stats[k].m2.tolist() for k in keys],
            },
            schema={
                "principal_key": pl.String,
                "n": pl.Float64,
                "mean": pl.List(pl.Float64),
                "m2": pl.List(pl.Float64),
            },
        )

    @staticmethod
    def restore(frame: pl.DataFrame, feature_names: Sequence[str]) -> OwnBaseline:
        stats = {
            row[0]: _Stats(float(row[1]), np.asarray(row[2]), np.asarray(row[3]))
            for row in frame.iter_rows()
        }
        width = len(feature_names)
        if any(s.mean.shape != (width,) for s in stats.values()):
            raise ValueError("baseline snapshot has a different number of features")
        return OwnBaseline(tuple(feature_names), stats)


def _expected(
    baseline: OwnBaseline, keys: Sequence[str], types: Sequence[str], peers: PeerBaseline
) -> tuple[Matrix, Matrix]:
    """Mean and standard deviation per row, own history blended with peers by its length."""
    width = len(baseline.feature_names)
    mean = np.empty((len(keys), width))
    std = np.empty((len(keys), width))
    for i, (key, kind) in enumerate(zip(keys, types, strict=True)):
        peer_mean, peer_spread = peers.of(kind)
        own = baseline.stats.get(key)
        if own is None:
            mean[i], var = peer_mean, peer_spread**2
        else:
            w = own.n / (own.n + PRIOR_WINDOWS)
            own_var = own.m2 / own.n
            mean[i] = w * own.mean + (1 - w) * peer_mean
            var = w * own_var + (1 - w) * peer_spread**2
        std[i] = np.sqrt(var + SPREAD_FLOOR**2)
    return mean, std


def deviations(
    baseline: OwnBaseline,
    z_values: Matrix,
    keys: Sequence[str],
    types: Sequence[str],
    peers: PeerBaseline,
) -> tuple[Matrix, Matrix]:
    """Per row and feature: ``z`` against the principal's expected value, and that value in
    the features' own units (for explanations)."""
    mean, std = _expected(baseline, keys, types, peers)
    return (z_values - mean) / std, np.expm1(mean)


def _merge(old: _Stats | None, rows: Matrix) -> _Stats:
    n_b = float(rows.shape[0])
    mean_b = rows.mean(axis=0)
    m2_b = ((rows - mean_b) ** 2).sum(axis=0)
    if old is None:
        return _Stats(n_b, mean_b, m2_b)
    n = old.n + n_b
    delta = mean_b - old.mean
    return _Stats(n, old.mean + delta * (n_b / n), old.m2 + m2_b + delta**2 * (old.n * n_b / n))


def score_and_update(
    baseline: OwnBaseline, windows: pl.DataFrame, x: Matrix, peers: PeerBaseline
) -> tuple[OwnBaseline, Matrix, Matrix]:
    """Deviation ``z`` per row and feature (and the expected values), then the baseline that has
    learned these windows. Rows may come in any order; see the module docstring."""
    z_values = transform(x)
    z = np.zeros_like(z_values)
    usual = np.zeros_like(z_values)
    if windows.height == 0:
        return baseline, z, usual
    keys: list[str] = windows.get_column("principal_key").to_list()
    types: list[str] = windows.get_column("principal_type").to_list()
    starts = windows.get_column("window_start").to_numpy()
    learn = ~windows.get_column("late_correction").to_numpy().astype(bool)
    stats: dict[str, _Stats] = dict(baseline.stats)  # the old baseline's mapping stays as it was
    current = OwnBaseline(baseline.feature_names, stats)
    for start in np.unique(starts):
        rows = np.flatnonzero(starts == start)
        group_keys = [keys[i] for i in rows]
        z[rows], usual[rows] = deviations(
            current, z_values[rows], group_keys, [types[i] for i in rows], peers
        )
        by_key: dict[str, list[int]] = {}
        for i in rows[learn[rows]]:
            by_key.setdefault(keys[i], []).append(int(i))
        for key, idx in by_key.items():
            stats[key] = _merge(stats.get(key), z_values[idx])
    return current, z, usual


def deviation_score(z: Matrix, measured: np.ndarray[tuple[int], np.dtype[np.bool_]]) -> Matrix:
    """The largest positive deviation of each row over the measured features (0 when nothing
    rose)."""
    if z.size == 0:
        return np.zeros(z.shape[0])
    out: Matrix = np.clip(z[:, measured], 0.0, None).max(axis=1)
    return out
