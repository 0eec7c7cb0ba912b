"""read_training_features: point-in-time joins through get_historical_features.

Historical reads use only the parquet sources, so these tests build with SQLite.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from adaptrec.features import (
    FeatureStoreError,
    build_features,
    compute_feature_frames,
    open_store,
    read_training_features,
)
from tests.features.conftest import copy_repo

pytestmark = pytest.mark.component


@pytest.fixture(scope="module")
def offline(tmp_path_factory, dataset, inputs, build_time):
    repo = copy_repo(tmp_path_factory.mktemp("offline") / "feature_repo")
    build_features(repo, dataset, inputs, now=build_time)
    return repo, open_store(repo), compute_feature_frames(dataset, inputs)


def _examples(dataset) -> pd.DataFrame:
    """Every rating as a training example, at its own timestamp."""
    ratings = dataset.ratings
    return pd.DataFrame(
        {
            "user_id": dataset.user_ids[ratings["user"]],
            "item_id": dataset.item_ids[ratings["item"]],
            "event_timestamp": pd.to_datetime(ratings["timestamp"], unit="s", utc=True),
            "rating": ratings["rating"].to_numpy(),
        }
    )


def _expected_as_of(frame, keys, examples, column, ttl) -> pd.Series:
    """The latest value of ``column`` at or before each example, within ``ttl``."""
    expected = []
    for example in examples.itertuples():
        rows = frame
        for key in keys:
            rows = rows[rows[key] == getattr(example, key)]
        rows = rows[rows["event_timestamp"] <= example.event_timestamp]
        if ttl:
            rows = rows[rows["event_timestamp"] >= example.event_timestamp - ttl]
        latest = rows.sort_values("event_timestamp").tail(1)
        expected.append(latest[column].iloc[0] if len(latest) else np.nan)
    return pd.Series(expected, dtype="float64")


def test_future_value_never_reaches_example(offline, dataset):
    _, store, frames = offline
    profiles = frames["user_profile"]
    user_rows = profiles[profiles["user_id"] == "100"].sort_values("event_timestamp")
    first, second = user_rows["event_timestamp"].iloc[:2]
    # One second before the second snapshot: only the first one is known.
    examples = pd.DataFrame(
        {
            "user_id": ["100", "100"],
            "item_id": ["500", "500"],
            "event_timestamp": [second - timedelta(seconds=1), second],
        }
    )

    result = read_training_features(store, examples)

    assert result["n_ratings"].iloc[0] == user_rows["n_ratings"].iloc[0]
    assert result["n_ratings"].iloc[1] == user_rows["n_ratings"].iloc[1]
    assert user_rows["n_ratings"].iloc[0] != user_rows["n_ratings"].iloc[1]
    assert first < second


def test_example_never_sees_own_rating(offline, dataset):
    _, store, _ = offline
    examples = _examples(dataset)

    result = read_training_features(store, examples)
    ratings = dataset.ratings
    day_starts = ratings["timestamp"] // 86_400 * 86_400
    before_day = [
        int(((ratings["user"] == user) & (ratings["timestamp"] < start)).sum())
        for user, start in zip(ratings["user"], day_starts, strict=True)
    ]

    # Snapshots close at midnight: an example gets exactly the ratings made before
    # its own UTC day, so neither its own rating nor a later one.
    counts = result["n_ratings"].fillna(0).astype(int).tolist()
    assert counts == before_day


def test_joins_match_direct_as_of_lookup(offline, dataset):
    _, store, frames = offline
    examples = _examples(dataset).sample(60, random_state=1).reset_index(drop=True)

    result = read_training_features(store, examples)

    checks = [
        ("user_profile", ["user_id"], "n_ratings", timedelta(days=90)),
        ("item_popularity", ["item_id"], "ratings_7d", timedelta(days=2)),
        ("content_landscape", [], "landscape_ratings_7d", timedelta(days=2)),
    ]
    for view, keys, column, ttl in checks:
        expected = _expected_as_of(frames[view], keys, examples, column, ttl)
        actual = result[column].astype("float64")
        pd.testing.assert_series_equal(actual, expected, check_names=False)


def test_rows_kept_in_order_with_extra_columns(offline, dataset):
    _, store, _ = offline
    examples = _examples(dataset).head(30)
    # Same timestamp for several users, and a row before any feature exists.
    examples.loc[0:9, "event_timestamp"] = examples.loc[0, "event_timestamp"]
    early = pd.Timestamp("1990-01-01", tz="UTC")
    examples.loc[10, "event_timestamp"] = early

    result = read_training_features(store, examples)

    assert len(result) == len(examples)
    assert list(result["user_id"]) == list(examples["user_id"])
    assert list(result["rating"]) == list(examples["rating"])
    assert pd.isna(result["n_ratings"].iloc[10])
    assert pd.isna(result["landscape_ratings_7d"].iloc[10])


def test_expired_profile_not_joined(offline, dataset):
    _, store, frames = offline
    profiles = frames["user_profile"]
    last = profiles[profiles["user_id"] == "100"]["event_timestamp"].max()
    examples = pd.DataFrame(
        {
            "user_id": ["100", "100"],
            "item_id": ["500", "500"],
            "event_timestamp": [last + timedelta(days=89), last + timedelta(days=91)],
        }
    )

    result = read_training_features(store, examples)

    assert not pd.isna(result["n_ratings"].iloc[0])
    assert pd.isna(result["n_ratings"].iloc[1])


def test_integer_user_ids_rejected(offline):
    _, store, _ = offline
    examples = pd.DataFrame(
        {
            "user_id": [100],
            "item_id": ["500"],
            "event_timestamp": [pd.Timestamp("1998-02-01", tz="UTC")],
        }
    )

    with pytest.raises(FeatureStoreError) as raised:
        read_training_features(store, examples)
    assert "'user_id'" in str(raised.value)
    assert "100" in str(raised.value)
    assert "astype(str)" in str(raised.value)


def test_missing_timestamp_column_rejected(offline):
    _, store, _ = offline
    examples = pd.DataFrame({"user_id": ["100"], "item_id": ["500"]})

    with pytest.raises(FeatureStoreError, match="no column 'event_timestamp'"):
        read_training_features(store, examples)


def test_corrupt_source_rejected(tmp_path, dataset, inputs, build_time):
    repo = copy_repo(tmp_path / "feature_repo")
    build_features(repo, dataset, inputs, now=build_time)
    source = repo / "data" / "item_popularity.parquet"
    source.write_bytes(b"PAR1 this is not a parquet file PAR1")
    examples = _examples(dataset).head(3)

    with pytest.raises(FeatureStoreError) as raised:
        read_training_features(open_store(repo), examples)
    assert "'item_popularity'" in str(raised.value)
    assert str(source) in str(raised.value)
    assert "adaptrec features build" in str(raised.value)


def test_source_missing_column_rejected(tmp_path, dataset, inputs, build_time):
    repo = copy_repo(tmp_path / "feature_repo")
    build_features(repo, dataset, inputs, now=build_time)
    source = repo / "data" / "user_profile.parquet"
    pd.read_parquet(source).drop(columns="topic_std").to_parquet(source)

    with pytest.raises(FeatureStoreError) as raised:
        read_training_features(open_store(repo), _examples(dataset).head(3))
    assert "'user_profile'" in str(raised.value)
    assert "'topic_std'" in str(raised.value)


def test_unbuilt_repository_rejected(repo):
    examples = pd.DataFrame(
        {"user_id": ["1"], "item_id": ["2"], "event_timestamp": [pd.Timestamp.now()]}
    )

    with pytest.raises(FeatureStoreError, match="adaptrec features build"):
        read_training_features(open_store(repo), examples)


def test_naive_timestamps_read_as_utc(offline, dataset):
    _, store, _ = offline
    examples = _examples(dataset).head(20)
    aware = read_training_features(store, examples)
    naive = examples.assign(
        event_timestamp=examples["event_timestamp"]
        .dt.tz_localize(None)
        .astype("datetime64[us]")
    )

    result = read_training_features(store, naive)

    assert result["n_ratings"].fillna(-1).tolist() == (
        aware["n_ratings"].fillna(-1).tolist()
    )
