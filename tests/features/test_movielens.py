"""The full MovieLens-100K build through ``adaptrec features build``, real models."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from adaptrec.cli import main
from adaptrec.data import load_dataset
from adaptrec.features import (
    open_store,
    read_online_user_features,
    read_training_features,
)
from tests.features.conftest import copy_repo

pytestmark = pytest.mark.slow


def _expected_rows(dataset) -> dict[str, int]:
    """Recount each view's rows from the ratings, independently of the build."""
    ratings = dataset.ratings.assign(day=dataset.ratings["timestamp"] // 86_400)
    # A rating counts for its day and the next six, up to the last day of data.
    last_day = ratings["day"].max()
    item_days = set()
    days = set()
    for item, day in ratings[["item", "day"]].drop_duplicates().itertuples(index=False):
        for later in range(day, min(day + 7, last_day + 1)):
            item_days.add((item, later))
            days.add(later)
    return {
        "user_profile": ratings.groupby(["user", "day"]).ngroups,
        "item_content": dataset.n_items,
        "item_popularity": len(item_days),
        "content_landscape": len(days),
    }


def _reported_rows(output: str) -> dict[str, int]:
    return {
        name: int(rows)
        for name, rows in re.findall(r"^  (\w+): (\d+) rows", output, re.MULTILINE)
    }


def test_movielens_build_serves_and_trains(tmp_path, capsys):
    repo = copy_repo(tmp_path / "feature_repo")
    dataset = load_dataset("ml-100k")

    code = main(["features", "build", "--repo", str(repo)])
    output = capsys.readouterr().out

    assert code == 0
    assert _reported_rows(output) == _expected_rows(dataset)

    # Serving: a real user has a 20-topic profile, an unknown one has none.
    store = open_store(repo)
    end = pd.to_datetime(dataset.ratings["timestamp"].max(), unit="s", utc=True)
    recent_user = str(dataset.user_ids[dataset.ratings["user"].iloc[-1]])
    features = read_online_user_features(
        store, [recent_user, "no-such-user"], now=end.to_pydatetime()
    )
    assert features.status == ["present", "unknown"]
    assert len(features.values["topic_mean"][0]) == 20
    assert all(np.isfinite(features.values["topic_std"][0]))

    # Training: each example counts only the ratings made before its UTC day.
    sample = dataset.ratings.sample(200, random_state=0)
    examples = pd.DataFrame(
        {
            "user_id": dataset.user_ids[sample["user"]],
            "item_id": dataset.item_ids[sample["item"]],
            "event_timestamp": pd.to_datetime(sample["timestamp"], unit="s", utc=True),
        }
    )
    result = read_training_features(store, examples)
    ratings = dataset.ratings
    expected = [
        int(
            (
                (ratings["user"] == user)
                & (ratings["timestamp"] < stamp // 86_400 * 86_400)
            ).sum()
        )
        for user, stamp in zip(sample["user"], sample["timestamp"], strict=True)
    ]
    assert result["n_ratings"].fillna(0).astype(int).tolist() == expected
    assert result["content_embedding"].notna().all()

    # A second run changes nothing.
    assert main(["features", "build", "--repo", str(repo)]) == 0
    rerun = capsys.readouterr().out
    assert rerun.count("online store up to date") == 4
