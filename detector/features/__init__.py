"""Per-principal windowed features and the principal profiles they are judged against.

The feature stage turns a stream of normalized events (:mod:`detector.events`) into, for each
principal and tumbling event-time window, one row of numbers saying how unlike itself the
principal is acting, plus the context a finding needs (samples, the new items by name).

- :func:`update` / :func:`flush`: the pure streaming step, ``(state, events, config) ->
  (state, closed_windows, report)``; late and duplicate events are explained in
  :mod:`detector.features._stream`;
- :class:`FeatureState`: the state value (profiles, open windows, recent ids, watermark),
  with :meth:`~FeatureState.snapshot` / :meth:`~FeatureState.restore` for a
  :class:`detector.state.StateStore`;
- :data:`FEATURE_COLUMNS`, :data:`FEATURE_DTYPES`, :func:`feature_schema_hash`: the one
  feature list training and serving share;
- :class:`FeatureConfig`: window, lateness, forgetting, caps, samples.

Imports: polars, numpy, :mod:`detector.events`, :mod:`detector.state`, :mod:`detector.errors`.
"""

from detector.features._columns import (
    FEATURE_COLUMNS,
    FEATURE_DOCS,
    FEATURE_DTYPES,
    ITEM_KINDS,
    NEW_ITEM_COLUMNS,
    SERVICE_FAMILIES,
    closed_window_schema,
    context_schema,
    feature_columns,
    feature_dtypes,
    feature_schema_hash,
)
from detector.features._config import (
    DEFAULT_ALLOWED_LATENESS,
    DEFAULT_ARCHIVE_LATENESS,
    DEFAULT_DEDUP_HORIZON,
    DEFAULT_HABIT_MIN_CALLS,
    DEFAULT_HABIT_SHARE,
    DEFAULT_KMS_EXCLUDED_PRINCIPALS,
    DEFAULT_MAX_ITEMS_PER_KIND,
    DEFAULT_PROFILE_TTL,
    DEFAULT_SAMPLE_EVENT_IDS,
    DEFAULT_SAMPLE_NEW_ITEMS,
    DEFAULT_SAMPLE_SOURCE_IPS,
    DEFAULT_WINDOW,
    FeatureConfig,
    window_suffix,
)
from detector.features._items import network_of, user_agent_family
from detector.features._profile import Profiles
from detector.features._state import FeatureState, empty_state
from detector.features._stream import UpdateReport, advance, flush, preview, update

__all__ = [
    "DEFAULT_ALLOWED_LATENESS",
    "DEFAULT_ARCHIVE_LATENESS",
    "DEFAULT_DEDUP_HORIZON",
    "DEFAULT_HABIT_MIN_CALLS",
    "DEFAULT_HABIT_SHARE",
    "DEFAULT_KMS_EXCLUDED_PRINCIPALS",
    "DEFAULT_MAX_ITEMS_PER_KIND",
    "DEFAULT_PROFILE_TTL",
    "DEFAULT_SAMPLE_EVENT_IDS",
    "DEFAULT_SAMPLE_NEW_ITEMS",
    "DEFAULT_SAMPLE_SOURCE_IPS",
    "DEFAULT_WINDOW",
    "FEATURE_COLUMNS",
    "FEATURE_DOCS",
    "FEATURE_DTYPES",
    "ITEM_KINDS",
    "NEW_ITEM_COLUMNS",
    "SERVICE_FAMILIES",
    "FeatureConfig",
    "FeatureState",
    "Profiles",
    "UpdateReport",
    "advance",
    "closed_window_schema",
    "context_schema",
    "empty_state",
    "feature_columns",
    "feature_dtypes",
    "feature_schema_hash",
    "flush",
    "network_of",
    "preview",
    "update",
    "user_agent_family",
    "window_suffix",
]
