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

Beside the statistics each principal's record keeps what its learning period needs (when it
was first learned, on how many UTC days it was active; :mod:`detector.scoring._learning`) and
its behavioural peer group (:mod:`detector.scoring._peers`), recomputed as each window is
learned. The group's own running statistics (over its principals' windows, in this state) are
the prior a short history is shrunk towards; until a group has enough windows, the artifact's
peer baseline for the principal's ``userIdentity.type`` is.

Imports: numpy, polars, and this package's model transform and peer baseline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import polars as pl

from detector.scoring._explain import PeerBaseline
from detector.scoring._learning import DAY_MS, LearningConfig
from detector.scoring._model import Matrix, transform
from detector.scoring._peers import assign_group, type_group

__all__ = [
    "OwnBaseline",
    "RowContext",
    "deviation_score",
    "deviations",
    "score_and_update",
]

PRIOR_WINDOWS: Final = 20.0  # weight of the peer baseline, in windows of own history
SPREAD_FLOOR: Final = 0.25  # on the log1p scale: changes smaller than ~28% never count
# A behavioural group becomes the prior once it has this many learned windows (about two
# principal-days of steady activity); before, the artifact's peers of the principal's type.
GROUP_PRIOR_MIN_WINDOWS: Final = 500.0
# Restored from a snapshot written before learning periods existed: treated as long known.
_LONG_AGO_MS: Final = 0


@dataclass(frozen=True, slots=True)
class _Stats:
    n: float
    mean: Matrix
    m2: Matrix  # sum of squared deviations from the mean
    first_ms: int = _LONG_AGO_MS  # window_start (epoch ms) of the first window learned
    last_day: int = -1  # UTC day number of the last window learned
    days: int = 0  # distinct UTC days with a learned window
    group: str = ""  # behavioural peer group, as of the last window learned


_SCHEMA: Final = pl.Schema(
    {
        "principal_key": pl.String(),
        "n": pl.Float64(),
        "mean": pl.List(pl.Float64()),
        "m2": pl.List(pl.Float64()),
        "first_ms": pl.Int64(),
        "last_day": pl.Int64(),
        "days": pl.Int64(),
        "group": pl.String(),
    }
)


def _frame(stats: Mapping[str, _Stats]) -> pl.DataFrame:
    keys = sorted(stats)
    rows = [stats[k] for k in keys]
    return pl.DataFrame(
        {
            "principal_key": keys,
            "n": [s.n for s in rows],
            "mean": [s.mean.tolist() for s in rows],
            "m2": [s.m2.tolist() for s in rows],
            "first_ms": [s.first_ms for s in rows],
            "last_day": [s.last_day for s in rows],
            "days": [s.days for s in rows],
            "group": [s.group for s in rows],
        },
        schema=_SCHEMA,
    )


def _unframe(frame: pl.DataFrame, width: int) -> dict[str, _Stats]:
    # Snapshots from before learning periods lack the last four columns: long known, no group.
    defaults = {"first_ms": _LONG_AGO_MS, "last_day": -1, "days": 0, "group": ""}
    frame = frame.with_columns(
        pl.lit(v, dtype=_SCHEMA[k]).alias(k) for k, v in defaults.items() if k not in frame.columns
    )
    stats = {
        row[0]: _Stats(
            float(row[1]),
            np.asarray(row[2]),
            np.asarray(row[3]),
            int(row[4]),
            int(row[5]),
            int(row[6]),
            str(row[7]),
        )
        for row in frame.select(_SCHEMA.names()).iter_rows()
    }
    if any(s.mean.shape != (width,) for s in stats.values()):
        raise ValueError("baseline snapshot has a different number of features")
    return stats


@dataclass(frozen=True, slots=True)
class OwnBaseline:
    """Per principal: windows seen, feature means and squared-deviation sums (log1p scale),
    learning-period counters and peer group; per peer group, the same statistics over its
    principals' windows."""

    feature_names: tuple[str, ...]
    stats: Mapping[str, _Stats] = field(default_factory=dict)
    groups: Mapping[str, _Stats] = field(default_factory=dict)

    def snapshot(self) -> pl.DataFrame:
        return _frame(self.stats)

    def groups_snapshot(self) -> pl.DataFrame:
        return _frame(self.groups)

    @staticmethod
    def restore(
        frame: pl.DataFrame,
        feature_names: Sequence[str],
        groups: pl.DataFrame | None = None,
    ) -> OwnBaseline:
        width = len(feature_names)
        return OwnBaseline(
            tuple(feature_names),
            _unframe(frame, width),
            {} if groups is None else _unframe(groups, width),
        )

    def learning_ends(self, key: str, config: LearningConfig) -> int | None:
        """Epoch ms at which the principal's learning period ends at the latest (by age), or
        None when it is unknown to this state."""
        own = self.stats.get(key)
        return None if own is None else own.first_ms + config.max_age_ms

    def group_of(self, key: str, principal_type: str) -> str:
        own = self.stats.get(key)
        return own.group if own is not None and own.group else type_group(principal_type)


def _prior(
    baseline: OwnBaseline, key: str, kind: str, peers: PeerBaseline
) -> tuple[Matrix, Matrix]:
    """Mean and spread of the principal's peers: its behavioural group's, once that group has
    learned enough windows in this organisation, else the artifact's for its type."""
    peer_mean, peer_spread = peers.of(kind)
    group = baseline.groups.get(baseline.group_of(key, kind))
    if group is not None and group.n >= GROUP_PRIOR_MIN_WINDOWS:
        # The running spread is a standard deviation, which one burst in the group inflates;
        # the artifact's is robust (IQR): never let the group widen what counts as usual.
        spread = np.minimum(np.sqrt(group.m2 / group.n), peer_spread)
        return group.mean, np.maximum(spread, SPREAD_FLOOR)
    return peer_mean, peer_spread


def _expected(
    baseline: OwnBaseline, keys: Sequence[str], types: Sequence[str], peers: PeerBaseline
) -> tuple[Matrix, Matrix]:
    """Mean and standard deviation per row, own history blended with peers by its length."""
    width = len(baseline.feature_names)
    mean = np.empty((len(keys), width))
    std = np.empty((len(keys), width))
    for i, (key, kind) in enumerate(zip(keys, types, strict=True)):
        peer_mean, peer_spread = _prior(baseline, key, kind, peers)
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


def _merge(old: _Stats | None, rows: Matrix) -> tuple[float, Matrix, Matrix]:
    n_b = float(rows.shape[0])
    mean_b = rows.mean(axis=0)
    m2_b = ((rows - mean_b) ** 2).sum(axis=0)
    if old is None:
        return n_b, mean_b, m2_b
    n = old.n + n_b
    delta = mean_b - old.mean
    return n, old.mean + delta * (n_b / n), old.m2 + m2_b + delta**2 * (old.n * n_b / n)


@dataclass(frozen=True, slots=True)
class RowContext:
    """Per scored row, what the state knew of its principal *before* the row's window start:
    whether it had left its learning period, whether the row's UTC day is a new active day
    for it, and its behavioural peer group."""

    mature: np.ndarray[tuple[int], np.dtype[np.bool_]]
    new_day: np.ndarray[tuple[int], np.dtype[np.bool_]]
    group: list[str]


def _learn(
    stats: dict[str, _Stats], key: str, kind: str, rows: Matrix, start_ms: int, names: Sequence[str]
) -> str:
    """Fold one principal's rows of one window start into its record; returns its group."""
    old = stats.get(key)
    n, mean, m2 = _merge(old, rows)
    day = start_ms // DAY_MS
    first = start_ms if old is None else min(old.first_ms, start_ms)
    last = -1 if old is None else old.last_day
    days = (0 if old is None else old.days) + int(day != last)
    group = assign_group(kind, n, days, mean, names, key)
    stats[key] = _Stats(n, mean, m2, first, max(day, last), days, group)
    return group


def score_and_learn(
    baseline: OwnBaseline,
    windows: pl.DataFrame,
    x: Matrix,
    peers: PeerBaseline,
    learning: LearningConfig,
) -> tuple[OwnBaseline, Matrix, Matrix, RowContext]:
    """Deviation ``z`` per row and feature (and the expected values), each row's
    :class:`RowContext`, then the baseline that has learned these windows. Rows may come in any
    order; see the module docstring."""
    z_values = transform(x)
    z = np.zeros_like(z_values)
    usual = np.zeros_like(z_values)
    mature = np.zeros(windows.height, dtype=bool)
    new_day = np.zeros(windows.height, dtype=bool)
    group = [""] * windows.height
    if windows.height == 0:
        return baseline, z, usual, RowContext(mature, new_day, group)
    keys: list[str] = windows.get_column("principal_key").to_list()
    types: list[str] = windows.get_column("principal_type").to_list()
    starts = windows.get_column("window_start").dt.epoch("ms").to_numpy()
    learn = ~windows.get_column("late_correction").to_numpy().astype(bool)
    # The old baseline's mappings stay as they were.
    stats: dict[str, _Stats] = dict(baseline.stats)
    groups: dict[str, _Stats] = dict(baseline.groups)
    current = OwnBaseline(baseline.feature_names, stats, groups)
    names = baseline.feature_names
    for start in np.unique(starts):
        rows = np.flatnonzero(starts == start)
        group_keys = [keys[i] for i in rows]
        z[rows], usual[rows] = deviations(
            current, z_values[rows], group_keys, [types[i] for i in rows], peers
        )
        at = int(start)
        for i in rows:
            own = stats.get(keys[i])
            mature[i] = learning.mature(
                first_ms=None if own is None else own.first_ms,
                days=0 if own is None else own.days,
                windows=0.0 if own is None else own.n,
                at_ms=at,
            )
            new_day[i] = own is None or at // DAY_MS > own.last_day
            group[i] = current.group_of(keys[i], types[i])
        by_key: dict[str, list[int]] = {}
        for i in rows[learn[rows]]:
            by_key.setdefault(keys[i], []).append(int(i))
        # Sorted, so that the groups' sums do not depend on the rows' order within a batch.
        by_group: dict[str, list[int]] = {}
        for key in sorted(by_key):
            idx = by_key[key]
            joined = _learn(stats, key, types[idx[0]], z_values[idx], at, names)
            by_group.setdefault(joined, []).extend(idx)
        for name in sorted(by_group):
            g_n, g_mean, g_m2 = _merge(groups.get(name), z_values[by_group[name]])
            groups[name] = _Stats(g_n, g_mean, g_m2)
    return current, z, usual, RowContext(mature, new_day, group)


def score_and_update(
    baseline: OwnBaseline, windows: pl.DataFrame, x: Matrix, peers: PeerBaseline
) -> tuple[OwnBaseline, Matrix, Matrix]:
    """:func:`score_and_learn` without the learning-period context."""
    baseline, z, usual, _ = score_and_learn(baseline, windows, x, peers, LearningConfig())
    return baseline, z, usual


def deviation_score(z: Matrix, measured: np.ndarray[tuple[int], np.dtype[np.bool_]]) -> Matrix:
    """The largest positive deviation of each row over the measured features (0 when nothing
    rose)."""
    if z.size == 0:
        return np.zeros(z.shape[0])
    out: Matrix = np.clip(z[:, measured], 0.0, None).max(axis=1)
    return out
