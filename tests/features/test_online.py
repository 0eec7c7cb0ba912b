"""Online reads for serving, each test run against SQLite and against a real Redis."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pandas as pd
import pytest

from adaptrec.features import (
    FeatureStoreError,
    OnlineFeatureReader,
    compute_feature_frames,
    popular_items,
    read_online_user_features,
)

pytestmark = pytest.mark.component


@pytest.fixture(scope="module")
def frames(dataset, inputs) -> dict[str, pd.DataFrame]:
    return compute_feature_frames(dataset, inputs)


def _latest(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    return frame.sort_values("event_timestamp").groupby(key).last()


def serve_batch(
    reader: OnlineFeatureReader, user_ids: list[str], candidates: list[str], now
) -> tuple[dict[str, list[str]], Counter]:
    """A model server's request path: personalise known users, rank the rest by
    popularity, and count each fallback."""
    features = reader.read_users(user_ids, now=now)
    fallbacks: Counter = Counter()
    cold = set(features.cold_users())
    popular = popular_items(reader.store, candidates, k=5, now=now) if cold else []
    rankings = {}
    for user_id, status, recent in zip(
        features.user_ids,
        features.status,
        features.values["recent_item_ids"],
        strict=True,
    ):
        if user_id in cold:
            rankings[user_id] = popular
            fallbacks[status] += 1
        else:
            rankings[user_id] = [item for item in candidates if item not in recent][:5]
    return rankings, fallbacks


def test_known_users_get_latest_profile(built, frames, build_time):
    _, store, _ = built
    latest = _latest(frames["user_profile"], "user_id")
    user_ids = list(latest.index[:5])

    features = read_online_user_features(store, user_ids, now=build_time)

    assert features.status == ["present"] * 5
    assert features.values["n_ratings"] == list(latest["n_ratings"].iloc[:5])
    assert features.values["recent_item_ids"] == [
        list(items) for items in latest["recent_item_ids"].iloc[:5]
    ]
    for got, expected in zip(
        features.values["topic_mean"], latest["topic_mean"].iloc[:5], strict=True
    ):
        assert got == pytest.approx(expected.tolist(), rel=1e-6)


def test_landscape_read_with_users(built, frames, build_time):
    _, store, _ = built
    landscape = frames["content_landscape"].sort_values("event_timestamp").iloc[-1]

    features = read_online_user_features(store, ["100", "nobody"], now=build_time)

    assert (
        features.values["landscape_ratings_7d"]
        == [landscape["landscape_ratings_7d"]] * 2
    )
    assert features.values["topic_distribution"][0] == pytest.approx(
        landscape["topic_distribution"].tolist(), rel=1e-6
    )


def test_unknown_user_falls_back_to_popular(built, frames, build_time):
    _, store, _ = built
    reader = OnlineFeatureReader(store)
    candidates = [f"{500 + index}" for index in range(40)]
    popularity = frames["item_popularity"]
    fresh = popularity[popularity["event_timestamp"] >= build_time - timedelta(days=2)]
    latest = _latest(fresh, "item_id")["ratings_7d"]
    scores = pd.Series(0, index=candidates).add(latest, fill_value=0)
    expected = list(scores.sort_values(ascending=False, kind="stable").index[:5])

    rankings, fallbacks = serve_batch(
        reader, ["100", "no-such-user", "101"], candidates, build_time
    )

    assert rankings["no-such-user"] == expected
    assert rankings["100"] != expected
    assert fallbacks == Counter({"unknown": 1})
    assert reader.cold_starts == Counter({"unknown": 1})


def test_unknown_user_values_missing(built, build_time):
    _, store, _ = built

    features = read_online_user_features(store, ["no-such-user"], now=build_time)

    assert features.status == ["unknown"]
    assert features.values["topic_mean"] == [None]
    assert features.values["n_ratings"] == [None]
    assert features.cold_users() == ["no-such-user"]


def test_value_older_than_ttl_missing(built, frames):
    _, store, _ = built
    profiles = frames["user_profile"]
    last = profiles[profiles["user_id"] == "100"]["event_timestamp"].max()
    reader = OnlineFeatureReader(store)

    within = reader.read_users(["100"], now=last + timedelta(days=89))
    beyond = reader.read_users(["100"], now=last + timedelta(days=91))

    assert within.status == ["present"]
    assert within.values["n_ratings"][0] is not None
    assert beyond.status == ["expired"]
    assert beyond.values["n_ratings"] == [None]
    assert beyond.values["topic_mean"] == [None]
    # The landscape's two-day TTL has long passed too.
    assert beyond.values["landscape_ratings_7d"] == [None]
    assert reader.cold_starts == Counter({"expired": 1})


def test_stale_popularity_counts_as_unrated(built, build_time):
    _, store, _ = built
    candidates = [f"{500 + index}" for index in range(40)]

    ranking = popular_items(store, candidates, k=5, now=build_time + timedelta(days=30))

    assert ranking == candidates[:5]


def test_one_online_request_per_batch(built, build_time, monkeypatch):
    _, store, _ = built
    reader = OnlineFeatureReader(store)
    calls = []
    original = store.get_online_features

    def counting(*args, **kwargs):
        calls.append(kwargs.get("entity_rows"))
        return original(*args, **kwargs)

    monkeypatch.setattr(store, "get_online_features", counting)
    reader.read_users([str(100 + index) for index in range(30)], now=build_time)

    assert len(calls) == 1


def test_integer_user_id_rejected(built, build_time):
    _, store, _ = built

    with pytest.raises(FeatureStoreError) as raised:
        read_online_user_features(store, ["100", 101], now=build_time)
    assert "'user_id'" in str(raised.value)
    assert "101" in str(raised.value)
    assert "position 1" in str(raised.value)
    assert "str()" in str(raised.value)
