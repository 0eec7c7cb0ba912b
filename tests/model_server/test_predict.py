"""Recommendations over the v1 and v2 protocols from the real saved model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from prometheus_client import REGISTRY

from adaptrec.model_server.rollouts import COLD_START_VERSION
from adaptrec.model_server.score_cache import ScoreCache
from adaptrec.rollout import Rollout
from tests.model_server.conftest import (
    SPACE,
    SavedModel,
    ServedModel,
    hyperparams,
    serve_in_process,
    user_id_tensor,
    write_rollout,
)

pytestmark = [
    pytest.mark.slow,
    # kserve 0.21.0's v1 handler returns FastAPI's deprecated ORJSONResponse.
    pytest.mark.filterwarnings("ignore:ORJSONResponse is deprecated"),
]


def predict_v1(served: ServedModel, body: object) -> list[dict]:
    response = served.client.post(f"/v1/models/{served.name}:predict", json=body)
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def infer_v2(served: ServedModel, body: dict) -> dict[str, dict]:
    response = served.client.post(f"/v2/models/{served.name}/infer", json=body)
    assert response.status_code == 200, response.text
    return {output["name"]: output for output in response.json()["outputs"]}


def served_count(model: str, version: str) -> float:
    value = REGISTRY.get_sample_value(
        "adaptrec_recommendations_total", {"model": model, "version": version}
    )
    return value or 0.0


def test_known_user_gets_top_k(served: ServedModel, saved_model: SavedModel) -> None:
    user = saved_model.user_ids[0]

    [prediction] = predict_v1(served, {"instances": [user], "k": 10})

    items = prediction["items"]
    assert prediction["userId"] == user
    assert prediction["coldStart"] is False
    assert prediction["version"] == SPACE.initial().version
    assert len(items) == 10
    assert len(set(items)) == 10
    assert set(items) <= set(saved_model.item_ids)
    assert not set(items) & saved_model.train_items(user)
    assert prediction["scores"] == sorted(prediction["scores"], reverse=True)


def test_string_and_integer_ids_agree(served: ServedModel) -> None:
    by_string, by_integer = predict_v1(served, {"instances": ["196", 196], "k": 5})

    assert by_string["items"] == by_integer["items"]
    assert by_string["userId"] == by_integer["userId"] == "196"


def test_exclude_removes_items(served: ServedModel, saved_model: SavedModel) -> None:
    user = saved_model.user_ids[1]
    [full] = predict_v1(served, {"instances": [user], "k": 8})
    excluded = full["items"][:3]

    [filtered] = predict_v1(
        served, {"instances": [{"userId": user, "k": 5, "exclude": excluded}]}
    )

    assert not set(filtered["items"]) & set(excluded)
    assert filtered["items"] == full["items"][3:8]


def test_instance_k_overrides_request_k(served: ServedModel) -> None:
    short, default = predict_v1(
        served, {"instances": [{"userId": "1", "k": 3}, "2"], "k": 7}
    )

    assert len(short["items"]) == 3
    assert len(default["items"]) == 7


def test_unknown_user_gets_cold_start(served: ServedModel) -> None:
    scores = served.model.recommender.cold_start_scores().cpu().numpy()
    expected = [served.model.catalogue.item_ids[i] for i in np.argsort(-scores)[:10]]
    before = served_count(served.name, COLD_START_VERSION)

    first, second = predict_v1(served, {"instances": ["no-such-user", "new-2"]})

    assert first["coldStart"] is True
    assert first["version"] == COLD_START_VERSION
    assert first["items"] == expected
    assert second["items"] == expected
    assert served_count(served.name, COLD_START_VERSION) == before + 2
    cold = REGISTRY.get_sample_value(
        "adaptrec_cold_start_recommendations_total", {"model": served.name}
    )
    assert cold is not None and cold >= 2


def test_cold_start_respects_exclude(served: ServedModel) -> None:
    [full] = predict_v1(served, {"instances": ["someone-new"], "k": 6})

    [filtered] = predict_v1(
        served,
        {
            "instances": [
                {"userId": "someone-new", "k": 4, "exclude": full["items"][:2]}
            ]
        },
    )

    assert filtered["items"] == full["items"][2:6]


def test_slate_shorter_when_catalogue_exhausted(
    served: ServedModel, saved_model: SavedModel
) -> None:
    user = saved_model.user_ids[2]
    n_items = len(saved_model.item_ids)
    unseen = n_items - len(saved_model.train_items(user))

    [prediction] = predict_v1(served, {"instances": [user], "k": n_items})

    assert len(prediction["items"]) == unseen
    assert all(np.isfinite(prediction["scores"]))


def test_v2_matches_v1(served: ServedModel) -> None:
    v1 = predict_v1(served, {"instances": ["196", "stranger"], "k": 4})

    outputs = infer_v2(
        served,
        {
            "inputs": [user_id_tensor(["196", "stranger"])],
            "parameters": {"k": 4},
        },
    )

    assert outputs["items"]["shape"] == [2, 4]
    assert outputs["items"]["data"] == v1[0]["items"] + v1[1]["items"]
    assert outputs["scores"]["datatype"] == "FP32"
    assert outputs["scores"]["data"] == pytest.approx(
        v1[0]["scores"] + v1[1]["scores"], rel=1e-6
    )
    assert outputs["version"]["data"] == [v1[0]["version"], COLD_START_VERSION]
    assert outputs["cold_start"]["data"] == [False, True]


def test_v2_integer_ids_and_exclude(served: ServedModel) -> None:
    [plain] = predict_v1(served, {"instances": [196], "k": 3})

    outputs = infer_v2(
        served,
        {
            "inputs": [
                {
                    "name": "user_id",
                    "datatype": "INT64",
                    "shape": [1, 1],
                    "data": [196],
                },
                {
                    "name": "exclude",
                    "datatype": "BYTES",
                    "shape": [1, 2],
                    "data": [plain["items"][0], ""],
                },
            ],
            "parameters": {"k": 2},
        },
    )

    assert outputs["items"]["data"] == plain["items"][1:3]


def test_v2_pads_short_slates(served: ServedModel, saved_model: SavedModel) -> None:
    user = saved_model.user_ids[2]
    n_items = len(saved_model.item_ids)
    unseen = n_items - len(saved_model.train_items(user))

    outputs = infer_v2(
        served,
        {
            "inputs": [user_id_tensor([user, "x"])],
            "parameters": {"k": n_items},
        },
    )

    items = outputs["items"]["data"]
    scores = outputs["scores"]["data"]
    assert outputs["items"]["shape"] == [2, n_items]
    assert items[unseen:n_items] == [""] * (n_items - unseen)
    assert scores[unseen:n_items] == [None] * (n_items - unseen)
    assert "" not in items[n_items:]


def test_slates_counted_per_version(served: ServedModel) -> None:
    version = SPACE.initial().version
    before = served_count(served.name, version)

    predict_v1(served, {"instances": ["1", "2", "3"]})

    assert served_count(served.name, version) == before + 3


@pytest.fixture(scope="module")
def canary(
    saved_model: SavedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServedModel, Rollout]]:
    rollout = Rollout(hyperparams(alpha=0.9, w_content=0.0), hyperparams(alpha=0.1), 50)
    path = write_rollout(tmp_path_factory.mktemp("canary") / "rollout.json", rollout)
    for served in serve_in_process("hybrid-canary", saved_model, path):
        yield served, rollout


def test_canary_split_by_user_hash(
    canary: tuple[ServedModel, Rollout], saved_model: SavedModel
) -> None:
    served, rollout = canary
    users = saved_model.user_ids[:40]
    assert rollout.candidate is not None

    versions = {}
    for start in range(0, len(users), 5):
        for prediction in predict_v1(served, {"instances": users[start : start + 5]}):
            versions[prediction["userId"]] = prediction["version"]

    for user in users:
        assert versions[user] == rollout.assign(user).version
    assert set(versions.values()) == {rollout.stable.version, rollout.candidate.version}
    # A user sees the same version on every request.
    repeat = predict_v1(served, {"instances": users[:5]})
    assert [p["version"] for p in repeat] == [versions[user] for user in users[:5]]


def test_canary_sets_rank_differently(
    canary: tuple[ServedModel, Rollout], saved_model: SavedModel, tmp_path: Path
) -> None:
    served, rollout = canary
    assert rollout.candidate is not None
    user = next(
        u for u in saved_model.user_ids if rollout.assign(u) == rollout.candidate
    )
    [as_candidate] = predict_v1(served, {"instances": [user], "k": 20})
    stable_only = write_rollout(tmp_path / "stable.json", Rollout(rollout.stable))

    for other in serve_in_process("hybrid-stable-only", saved_model, stable_only):
        [as_stable] = predict_v1(other, {"instances": [user], "k": 20})

    assert as_candidate["version"] != as_stable["version"]
    assert as_candidate["items"] != as_stable["items"]


def test_non_finite_scores_fail_clearly(
    served: ServedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real model does not produce NaN on demand, so this wraps its recommend
    # to inject the fault the server must report as its own error.
    recommend = served.model.recommender.recommend

    def recommend_nan(*args: object, **kwargs: object) -> tuple:
        items, scores = recommend(*args, **kwargs)
        return items, torch.full_like(scores, float("nan"))

    monkeypatch.setattr(served.model.recommender, "recommend", recommend_nan)
    # An empty cache sends every request through recommend.
    empty = ScoreCache(served.model.recommender, served.model.device, max_bytes=0)
    assert served.model.ranker is not None
    monkeypatch.setattr(served.model.ranker, "score_cache", empty)

    response = served.client.post(
        f"/v1/models/{served.name}:predict", json={"instances": ["196"]}
    )

    assert response.status_code == 500
    assert "non-finite" in response.json()["error"]
    assert "Traceback" not in response.text


def test_score_cache_matches_recommend(served: ServedModel) -> None:
    model = served.model
    assert model.score_cache is not None
    hyperparams = SPACE.initial()
    assert model.score_cache.versions == [hyperparams.version]
    users = torch.arange(0, 60, 2)
    exclude = [[int(user) % 7, 100 + int(user)] for user in users]

    for excluded in (None, exclude):
        cached = model.score_cache.top_k(hyperparams.version, users, 10, excluded)
        assert cached is not None
        items, scores = model.recommender.recommend(
            users, hyperparams, 10, exclude_train=True, exclude=excluded
        )
        assert torch.equal(cached[0], items)
        assert torch.allclose(cached[1], scores)


def test_uncached_server_gives_same_slates(
    served: ServedModel, saved_model: SavedModel
) -> None:
    body = {
        "instances": ["1", {"userId": "2", "exclude": ["50", "100"]}, "3", "x"],
        "k": 10,
    }
    cached = predict_v1(served, body)

    for uncached in serve_in_process(
        "hybrid-uncached", saved_model, score_cache_mb=0, max_users=5
    ):
        assert uncached.model.score_cache is not None
        assert uncached.model.score_cache.versions == []
        fresh = predict_v1(uncached, body)

    assert [p["items"] for p in fresh] == [p["items"] for p in cached]
    for new, old in zip(fresh, cached, strict=True):
        assert new["scores"] == pytest.approx(old["scores"], rel=1e-5)
