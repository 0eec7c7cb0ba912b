"""The feature frames, checked against a direct recount of the ratings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from adaptrec.features import FeatureStoreError, compute_feature_frames
from adaptrec.features.compute import DAY_SECONDS, RECENT_ITEMS
from tests.features.conftest import make_inputs


@pytest.fixture(scope="module")
def frames(dataset, inputs) -> dict[str, pd.DataFrame]:
    return compute_feature_frames(dataset, inputs)


def _stamp_seconds(frame: pd.DataFrame) -> np.ndarray:
    return frame["event_timestamp"].astype("int64").to_numpy() // 10**9


def test_profiles_one_row_per_active_day(dataset, frames):
    profiles = frames["user_profile"]
    ratings = dataset.ratings
    active = ratings.assign(day=ratings["timestamp"] // DAY_SECONDS)
    expected = active.groupby(["user", "day"]).ngroups

    assert len(profiles) == expected
    assert not profiles.duplicated(["user_id", "event_timestamp"]).any()
    assert (_stamp_seconds(profiles) % DAY_SECONDS == 0).all()


def test_profile_counts_ratings_before_stamp(dataset, frames):
    profiles = frames["user_profile"]
    ratings = dataset.ratings
    raw_user = dataset.user_ids[ratings["user"]]
    for row in profiles.itertuples():
        stamp = int(row.event_timestamp.timestamp())
        mine = ratings[(raw_user == row.user_id) & (ratings["timestamp"] < stamp)]
        last_30d = mine[mine["timestamp"] >= stamp - 30 * DAY_SECONDS]
        days = mine["timestamp"] // DAY_SECONDS

        assert row.n_ratings == len(mine)
        assert row.n_positives == int((mine["rating"] >= 4.0).sum())
        assert row.n_ratings_30d == len(last_30d)
        assert row.active_days == days.nunique()


def test_recent_items_most_recent_first(dataset, frames):
    profiles = frames["user_profile"]
    ratings = dataset.ratings
    for row in profiles.itertuples():
        stamp = int(row.event_timestamp.timestamp())
        user = int(np.flatnonzero(dataset.user_ids == row.user_id)[0])
        mine = ratings[(ratings["user"] == user) & (ratings["timestamp"] < stamp)]
        ordered = mine.sort_values(["timestamp", "item"], ascending=False)
        expected = dataset.item_ids[ordered["item"].to_numpy()[:RECENT_ITEMS]]

        assert list(row.recent_item_ids) == list(expected)


def test_profile_topics_encode_positive_history(dataset, inputs, frames):
    profiles = frames["user_profile"]
    ratings = dataset.ratings
    row = profiles.iloc[len(profiles) // 2]
    user = int(np.flatnonzero(dataset.user_ids == row["user_id"])[0])
    stamp = int(row["event_timestamp"].timestamp())
    liked = ratings[
        (ratings["user"] == user)
        & (ratings["timestamp"] < stamp)
        & (ratings["rating"] >= 4.0)
    ]["item"]
    history = np.zeros((1, dataset.n_items))
    history[0, liked.to_numpy()] = 1.0
    mu, sigma = inputs.encode_user_topics(sp.csr_matrix(history))

    np.testing.assert_allclose(row["topic_mean"], mu[0], rtol=1e-5)
    np.testing.assert_allclose(row["topic_std"], sigma[0], rtol=1e-5)


def test_popularity_counts_trailing_week(dataset, frames):
    popularity = frames["item_popularity"]
    ratings = dataset.ratings
    raw_item = dataset.item_ids[ratings["item"]]
    for row in popularity.sample(40, random_state=0).itertuples():
        stamp = int(row.event_timestamp.timestamp())
        window = ratings[
            (raw_item == row.item_id)
            & (ratings["timestamp"] < stamp)
            & (ratings["timestamp"] >= stamp - 7 * DAY_SECONDS)
        ]
        everyone = ratings[
            (ratings["timestamp"] < stamp)
            & (ratings["timestamp"] >= stamp - 7 * DAY_SECONDS)
        ]

        assert row.ratings_7d == len(window)
        assert row.positives_7d == int((window["rating"] >= 4.0).sum())
        assert row.mean_rating_7d == pytest.approx(window["rating"].mean(), rel=1e-6)
        assert row.share_7d == pytest.approx(len(window) / len(everyone), rel=1e-6)


def test_popularity_rows_only_for_nonempty_windows(frames):
    assert (frames["item_popularity"]["ratings_7d"] > 0).all()


def test_landscape_summarises_catalogue_week(dataset, inputs, frames):
    landscape = frames["content_landscape"]
    ratings = dataset.ratings
    row = landscape.iloc[len(landscape) // 2]
    stamp = int(row["event_timestamp"].timestamp())
    window = ratings[
        (ratings["timestamp"] < stamp)
        & (ratings["timestamp"] >= stamp - 7 * DAY_SECONDS)
    ]
    counts = window["item"].value_counts()
    shares = counts / counts.sum()
    loadings = inputs.item_topics[counts.index.to_numpy()]
    softmax = np.exp(loadings) / np.exp(loadings).sum(axis=1, keepdims=True)
    expected_topics = (shares.to_numpy()[:, None] * softmax).sum(axis=0)
    entropy = -(shares * np.log(shares)).sum() / np.log(len(counts))
    head = int(np.ceil(0.1 * dataset.n_items))

    assert row["landscape_ratings_7d"] == len(window)
    assert row["active_users_7d"] == window["user"].nunique()
    assert row["active_items_7d"] == len(counts)
    np.testing.assert_allclose(row["topic_distribution"], expected_topics, rtol=1e-5)
    assert sum(row["topic_distribution"]) == pytest.approx(1.0, rel=1e-5)
    assert row["popularity_entropy"] == pytest.approx(entropy, rel=1e-5)
    assert row["top_decile_share"] == pytest.approx(
        shares.sort_values(ascending=False)[:head].sum(), rel=1e-5
    )


def test_item_content_keeps_kg_mask(dataset, inputs, frames):
    content = frames["item_content"]

    assert len(content) == dataset.n_items
    assert list(content["has_kg"]) == list(inputs.kg_mask)
    for row in content[~content["has_kg"]].itertuples():
        assert not np.any(row.kg_embedding)


def test_inputs_with_wrong_item_count_rejected(dataset):
    inputs = make_inputs()
    inputs.content = inputs.content[:-1]

    with pytest.raises(FeatureStoreError, match="'content' has 39 rows"):
        compute_feature_frames(dataset, inputs)
