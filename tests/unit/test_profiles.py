"""Profiles: learning, forgetting, caps, and memory per principal."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from detector.features import FeatureConfig, empty_state, flush, update
from tests.unit.test_features_factory import events, record, user_key


def test_profiles_learn_windows_only_when_they_close() -> None:
    config = FeatureConfig()
    state, _, _ = update(empty_state(), events([record(1, 1)]), config)
    assert state.profiles.items.height == 0
    assert state.profiles.principals.height == 0
    state, _, _ = flush(state, config)
    principals = state.profiles.principals
    assert principals.get_column("principal_key").to_list() == [user_key("alice")]
    assert principals.item(0, "calls") == 1
    kinds = set(state.profiles.items.get_column("kind").cast(pl.String))
    assert kinds == {
        "public_ip",
        "public_network",
        "region",
        "user_agent",
        "event_name",
        "access_key",
    }
    # Monday 09:01 UTC -> hour-of-week bucket 9
    assert principals.item(0, "calls_by_hour_of_week")[9] == 1


def test_a_spraying_principal_keeps_only_the_most_recent_items() -> None:
    config = FeatureConfig(max_items_per_kind=5)
    spray = [record(i, i * 0.01, ip=f"198.51.{i // 250}.{i % 250 + 1}") for i in range(300)]
    state, _, _ = update(empty_state(), events(spray), config)
    state, rows, _ = flush(state, config)
    ips = state.profiles.items.filter(pl.col("kind") == "public_ip")
    assert ips.height == 5
    assert set(ips.get_column("value")) == {f"198.51.1.{k}" for k in range(46, 51)}
    assert rows.get_column("new_public_ips_count_by_principal_5m").sum() == 300


def test_forgotten_principals_and_items_leave_the_state() -> None:
    config = FeatureConfig(profile_ttl=timedelta(minutes=30))
    state, _, _ = update(empty_state(), events([record(1, 0, who="old")]), config)
    state, _, _ = update(state, events([record(2, 120, who="new")]), config)
    state, _, _ = flush(state, config)
    keys = set(state.profiles.principals.get_column("principal_key"))
    assert keys == {user_key("new")}
    assert set(state.profiles.items.get_column("principal_key")) == {user_key("new")}


def test_profile_memory_per_principal_stays_small() -> None:
    config = FeatureConfig()
    batch = [
        record(f"{p}-{i}", i * 3, who=f"user{p}", ip=f"203.0.113.{p}", name=f"Get{i % 5}")
        for p in range(50)
        for i in range(10)
    ]
    state, _, _ = update(empty_state(), events(batch), config)
    state, _, _ = flush(state, config)
    assert state.profiles.principals.height == 50
    assert state.profiles.estimated_size() / 50 < 4096


def test_item_texts_are_stored_once_however_many_principals_know_them() -> None:
    config = FeatureConfig()
    batch = [record(p, 1, who=f"user{p}", ip=f"203.0.113.{p}") for p in range(20)]
    state, _, _ = flush(update(empty_state(), events(batch), config)[0], config)
    profiles = state.profiles
    regions = profiles.items.filter(pl.col("kind") == "region")
    assert regions.height == 20
    assert set(regions.get_column("value")) == {"us-east-1"}
    texts = profiles.values.get_column("value").to_list()
    assert texts.count("us-east-1") == 1  # one text, twenty item codes
    assert profiles.values.height == profiles.item_codes.get_column("value_hash").n_unique()


def test_an_update_that_closes_no_window_leaves_the_profiles_as_they_are() -> None:
    config = FeatureConfig()
    state, _, _ = update(empty_state(), events([record(1, 1), record(2, 30)]), config)
    before = state.profiles
    state, rows, report = update(state, events([record(3, 31), record(4, 32)]), config)
    assert rows.height == 0
    assert report.windows_closed == report.late_events == 0
    assert state.profiles is before  # nothing learned, nothing to forget: not even a copy
