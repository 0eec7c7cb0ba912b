"""build_features: parquet sources, apply, materialisation, re-runs and bad input."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pandas as pd
import pytest

from adaptrec.features import (
    FeatureStoreError,
    build_features,
    compute_feature_frames,
    open_store,
)
from adaptrec.features.store import redis_connection_string
from tests.features.conftest import make_inputs

pytestmark = pytest.mark.component


def _online_value(store, reference: str, key: str, value: str):
    response = store.get_online_features(
        features=[reference], entity_rows=[{key: value}]
    )
    return response.to_dict()[reference.split(":")[1]][0]


def _digests(repo) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((repo / "data").glob("*.parquet"))
    }


def test_build_writes_every_view(repo, dataset, inputs, backend, build_time):
    summary = build_features(repo, dataset, inputs, now=build_time, **backend)
    frames = compute_feature_frames(dataset, inputs)
    by_name = {view.name: view for view in summary.views}

    assert set(by_name) == set(frames)
    for name, frame in frames.items():
        written = pd.read_parquet(by_name[name].path)
        assert by_name[name].rows == len(frame)
        assert len(written) == len(frame)
        assert by_name[name].start == frame["event_timestamp"].min()
        assert by_name[name].end == frame["event_timestamp"].max()
        assert by_name[name].materialization.startswith("materialised")
    assert summary.end_date == frames["user_profile"]["event_timestamp"].max()


def test_build_materialises_latest_profile(repo, dataset, inputs, backend, build_time):
    build_features(repo, dataset, inputs, now=build_time, **backend)
    store = open_store(repo, **backend)
    profiles = compute_feature_frames(dataset, inputs)["user_profile"]
    latest = profiles.sort_values("event_timestamp").groupby("user_id").last()

    for user_id, row in latest.head(10).iterrows():
        stored = _online_value(store, "user_profile:n_ratings", "user_id", user_id)
        assert stored == row["n_ratings"]


def test_rebuild_is_idempotent(repo, dataset, inputs, backend, build_time):
    build_features(repo, dataset, inputs, now=build_time, **backend)
    digests = _digests(repo)
    store = open_store(repo, **backend)
    before = _online_value(store, "user_profile:topic_mean", "user_id", "100")

    summary = build_features(repo, dataset, inputs, now=build_time, **backend)
    store = open_store(repo, **backend)

    assert _digests(repo) == digests
    for view in summary.views:
        assert view.materialization.startswith("online store up to date")
    assert _online_value(store, "user_profile:topic_mean", "user_id", "100") == before


def test_changed_source_rematerialised(repo, dataset, backend, build_time):
    build_features(repo, dataset, make_inputs(), now=build_time, **backend)
    shifted = make_inputs(offset=5.0)

    summary = build_features(repo, dataset, shifted, now=build_time, **backend)
    store = open_store(repo, **backend)
    stored = _online_value(store, "item_content:content_embedding", "item_id", "503")
    by_name = {view.name: view.materialization for view in summary.views}

    assert stored == pytest.approx(shifted.content[3].tolist(), rel=1e-6)
    assert by_name["item_content"].startswith("materialised")
    assert by_name["user_profile"].startswith("online store up to date")


def test_end_date_limits_then_extends(repo, dataset, inputs, backend, build_time):
    profiles = compute_feature_frames(dataset, inputs)["user_profile"]
    user_rows = profiles[profiles["user_id"] == "100"].sort_values("event_timestamp")
    assert len(user_rows) > 1, "user 100 needs two snapshots for this test"
    early_end = user_rows["event_timestamp"].iloc[0].to_pydatetime()

    build_features(repo, dataset, inputs, now=build_time, end_date=early_end, **backend)
    early = _online_value(
        open_store(repo, **backend), "user_profile:n_ratings", "user_id", "100"
    )
    summary = build_features(repo, dataset, inputs, now=build_time, **backend)
    late = _online_value(
        open_store(repo, **backend), "user_profile:n_ratings", "user_id", "100"
    )

    assert early == user_rows["n_ratings"].iloc[0]
    assert late == user_rows["n_ratings"].iloc[-1]
    assert summary.views[0].materialization.startswith(
        f"materialised {early_end:%Y-%m-%d %H:%M}"
    )


def test_future_end_date_rejected(repo, dataset, inputs, build_time):
    future = build_time + timedelta(days=3)

    with pytest.raises(FeatureStoreError, match="is in the future") as raised:
        build_features(repo, dataset, inputs, now=build_time, end_date=future)
    assert future.date().isoformat() in str(raised.value)
    assert "omit it" in str(raised.value)


def test_view_with_missing_column_rejected(repo, dataset, inputs, build_time):
    definitions = repo / "definitions.py"
    text = definitions.read_text()
    marker = 'Field(name="n_ratings", dtype=Int64, description="Ratings so far."),'
    assert marker in text
    definitions.write_text(
        text.replace(
            marker, marker + '\n        Field(name="favourite_genre", dtype=String),'
        )
    )

    with pytest.raises(FeatureStoreError) as raised:
        build_features(repo, dataset, inputs, now=build_time)
    assert "'user_profile'" in str(raised.value)
    assert "'favourite_genre'" in str(raised.value)
    assert "definitions.py" in str(raised.value)


def test_broken_definitions_rejected(repo, dataset, inputs, build_time):
    (repo / "definitions.py").write_text("from feast import Nothing\n")

    with pytest.raises(FeatureStoreError, match="failed to import feature definitions"):
        build_features(repo, dataset, inputs, now=build_time)


def test_missing_repository_rejected(tmp_path, dataset, inputs):
    with pytest.raises(FeatureStoreError, match="has no definitions.py"):
        build_features(tmp_path / "nowhere", dataset, inputs)


def test_unknown_online_store_rejected(repo):
    with pytest.raises(FeatureStoreError, match="unknown online store 'dynamo'"):
        open_store(repo, online_store="dynamo")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("127.0.0.1:6379", "127.0.0.1:6379"),
        ("127.0.0.1:6380,db=2", "127.0.0.1:6380,db=2"),
        ("redis://127.0.0.1:6381/3", "127.0.0.1:6381,db=3"),
        ("redis://127.0.0.1", "127.0.0.1:6379"),
    ],
)
def test_redis_url_forms_accepted(url, expected):
    assert redis_connection_string(url) == expected


def test_invalid_redis_url_rejected():
    with pytest.raises(FeatureStoreError, match="invalid Redis URL 'localhost'"):
        redis_connection_string("localhost")
