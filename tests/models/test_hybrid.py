"""The hybrid recommender's scores, top-K, hyperparameter checks and caches."""

from __future__ import annotations

import pytest
import torch

from adaptrec.hyperparams import HyperparamError, HyperparamSpace
from adaptrec.models import HybridRecommender, ModelConfig, ModelError
from adaptrec.models.common import standardize_rows

from .conftest import hyperparams, small_space

ONLY = {
    "alpha": dict(alpha=1.0, w_content=0.0, w_kg=0.0, w_topic=0.0),
    "w_content": dict(alpha=0.0, w_content=1.0, w_kg=0.0, w_topic=0.0),
    "w_kg": dict(alpha=0.0, w_content=0.0, w_kg=1.0, w_topic=0.0),
    "w_topic": dict(alpha=0.0, w_content=0.0, w_kg=0.0, w_topic=1.0),
}


def all_users(recommender: HybridRecommender) -> torch.Tensor:
    return torch.arange(recommender.n_users)


# Scores


def test_score_is_weighted_sum_of_components(recommender):
    users = all_users(recommender)
    parts = {
        name: recommender.score(users, hyperparams(**values))
        for name, values in ONLY.items()
    }
    weights = dict(alpha=0.3, w_content=0.2, w_kg=0.7, w_topic=0.4)

    combined = recommender.score(users, hyperparams(**weights))

    expected = sum(weight * parts[name] for name, weight in weights.items())
    torch.testing.assert_close(combined, expected)


def test_each_component_is_standardized_per_user(recommender):
    seen = torch.from_numpy(recommender.train.toarray() > 0)
    for name, values in ONLY.items():
        scores = recommender.score(all_users(recommender), hyperparams(**values))
        for user in range(recommender.n_users):
            candidates = scores[user][~seen[user]]
            assert candidates.mean().item() == pytest.approx(0.0, abs=1e-4), name
            assert candidates.std(unbiased=False).item() == pytest.approx(
                1.0, abs=1e-3
            ), name


def test_cf_component_is_standardized_ease(recommender, train):
    rows = torch.from_numpy(train.toarray())
    expected = standardize_rows(rows @ recommender.scorer.ease_weights, rows > 0)
    scores = recommender.score(all_users(recommender), hyperparams(**ONLY["alpha"]))
    torch.testing.assert_close(scores, expected)


def test_zero_weights_give_zero_scores(recommender):
    zero = dict(alpha=0.0, w_content=0.0, w_kg=0.0, w_topic=0.0)
    scores = recommender.score(all_users(recommender), hyperparams(**zero))
    assert torch.equal(scores, torch.zeros(recommender.n_users, recommender.n_items))
    assert recommender.trained_betas == []
    assert recommender.trained_gammas == []


def test_history_scores_match_training_user(recommender, train):
    values = hyperparams(alpha=0.5, w_content=0.3, w_kg=0.2, w_topic=0.6)
    histories = [train[user].indices.tolist() for user in range(3)]
    from_history = recommender.score_histories(histories, values)
    from_index = recommender.score(torch.arange(3), values)
    torch.testing.assert_close(from_history, from_index, rtol=1e-4, atol=1e-4)


# Hyperparameters and lazily trained components


def test_unknown_hyperparameter_rejected(recommender):
    values = {**hyperparams(), "w_social": 0.1}
    with pytest.raises(HyperparamError, match="unknown \\['w_social'\\]"):
        recommender.score(torch.arange(2), values)


def test_out_of_range_value_rejected(recommender):
    with pytest.raises(HyperparamError, match="'alpha' = 1.5 lies outside"):
        recommender.score(torch.arange(2), hyperparams(alpha=1.5))
    with pytest.raises(HyperparamError, match="'beta' = 0.5 lies outside"):
        recommender.user_topics(torch.arange(2), 0.5)


def test_space_with_unknown_name_rejected(dataset, train, embeddings, config):
    space = HyperparamSpace.from_dicts(
        [{"name": "dropout", "min": 0.0, "max": 1.0, "step": 0.1, "initial": 0.5}]
    )
    with pytest.raises(HyperparamError, match="no hyperparameter \\['dropout'\\]"):
        HybridRecommender.fit(dataset, train, space, config, embeddings=embeddings)


def test_beta_and_gamma_trained_once_per_grid_value(recommender):
    users = all_users(recommender)
    first = recommender.score(users, hyperparams(beta=0.0039, gamma=2.0))
    again = recommender.score(users, hyperparams(beta=0.0031, gamma=1.4))

    assert recommender.trained_betas == [0.004]
    assert recommender.trained_gammas == [1.0]
    assert torch.equal(first, again)

    recommender.score(users, hyperparams(beta=0.002, gamma=11.0))
    assert recommender.trained_betas == [0.002, 0.004]
    assert recommender.trained_gammas == [1.0, 11.0]


def test_prepare_trains_every_grid_value(recommender):
    recommender.prepare()
    assert recommender.trained_betas == [0.002, 0.004]
    assert recommender.trained_gammas == [1.0, 11.0]


def test_prepare_trains_listed_values(recommender):
    recommender.prepare([hyperparams(beta=0.002, gamma=11.0)])
    assert recommender.trained_betas == [0.002]
    assert recommender.trained_gammas == [11.0]


def test_space_without_beta_uses_config_default(dataset, train, embeddings):
    space = HyperparamSpace.from_dicts(
        [{"name": "w_topic", "min": 0.0, "max": 1.0, "step": 0.5, "initial": 1.0}]
    )
    config = ModelConfig.quick(nvdm_epochs=1, nvdm_hidden=8, default_beta=0.002)
    model = HybridRecommender.fit(
        dataset, train, space, config, embeddings=embeddings, device="cpu"
    )
    model.score(torch.arange(2), {"w_topic": 1.0})
    assert model.trained_betas == [0.002]
    assert model.trained_gammas == []


# Top-K


def test_recommend_skips_train_and_excluded_items(recommender, train):
    users = all_users(recommender)
    exclude = [
        [(user * 7 + shift) % recommender.n_items for shift in range(3)]
        for user in users.tolist()
    ]

    items, scores = recommender.recommend(users, hyperparams(), k=10, exclude=exclude)

    assert items.shape == (recommender.n_users, 10)
    assert scores.shape == (recommender.n_users, 10)
    assert torch.isfinite(scores).all()
    assert (scores[:, :-1] >= scores[:, 1:]).all()
    for user in users.tolist():
        recommended = set(items[user].tolist())
        assert not recommended & set(train[user].indices.tolist())
        assert not recommended & set(exclude[user])
        assert len(recommended) == 10


def test_recommend_with_train_items_allowed(recommender):
    items, _ = recommender.recommend(
        torch.arange(2), hyperparams(), k=recommender.n_items, exclude_train=False
    )
    assert sorted(items[0].tolist()) == list(range(recommender.n_items))


@pytest.mark.parametrize("k", [0, -1, 41, 2.5, True])
def test_recommend_rejects_k_out_of_bounds(recommender, k):
    with pytest.raises(ModelError, match="k must be an integer in 1..40"):
        recommender.recommend(torch.arange(2), hyperparams(), k=k)


def test_recommend_rejects_k_beyond_candidates(recommender, train):
    left = recommender.n_items - train[0].nnz
    with pytest.raises(ModelError, match=f"only {left} items left"):
        recommender.recommend(torch.tensor([0]), hyperparams(), k=left + 1)
    items, _ = recommender.recommend(torch.tensor([0]), hyperparams(), k=left)
    assert items.shape == (1, left)


def test_recommend_rejects_bad_indices(recommender):
    with pytest.raises(ModelError, match="user index 30 is outside 0..29"):
        recommender.recommend(torch.tensor([0, 30]), hyperparams(), k=5)
    with pytest.raises(ModelError, match="exclude\\[1\\] names item index 40"):
        recommender.recommend(
            torch.tensor([0, 1]), hyperparams(), 5, exclude=[[], [40]]
        )
    with pytest.raises(ModelError, match="exclude has 1 lists but 2 users"):
        recommender.recommend(torch.tensor([0, 1]), hyperparams(), 5, exclude=[[]])


# Cold start and topic features


def test_cold_start_prefers_popular_items(recommender, train):
    scores = recommender.cold_start_scores()
    popularity = torch.from_numpy(train.sum(axis=0).A1)
    assert scores.shape == (recommender.n_items,)
    assert torch.corrcoef(torch.stack([scores, popularity]))[0, 1] > 0.5


def test_cold_start_recommend_excludes(recommender):
    top, _ = recommender.recommend_cold_start(5)
    items, scores = recommender.recommend_cold_start(5, exclude=top[:2].tolist())
    assert items.shape == (5,)
    assert scores.shape == (5,)
    assert not set(items.tolist()) & set(top[:2].tolist())


def test_topic_features_have_declared_shapes(recommender, config):
    mu, sigma = recommender.user_topics(torch.arange(4), 0.004)
    assert mu.shape == (4, config.n_topics)
    assert (sigma > 0).all()
    assert recommender.item_topics(0.004).shape == (
        recommender.n_items,
        config.n_topics,
    )


# Construction errors


def test_fit_rejects_mismatched_train(dataset, train, embeddings, config):
    with pytest.raises(ModelError, match="train has shape \\(30, 39\\)"):
        HybridRecommender.fit(
            dataset, train[:, :39], small_space(), config, embeddings=embeddings
        )
    with pytest.raises(ModelError, match="train must be a 2-D scipy.sparse matrix"):
        HybridRecommender.fit(
            dataset, train.toarray(), small_space(), config, embeddings=embeddings
        )


def test_config_rejects_invalid_values():
    with pytest.raises(ModelError, match="n_topics must be at least 1, got 0"):
        ModelConfig(n_topics=0)
    with pytest.raises(ModelError, match="ease_lambda must be positive"):
        ModelConfig(ease_lambda=-1.0)
    with pytest.raises(ModelError, match="nvdm_kl_warmup must lie in \\[0, 1\\]"):
        ModelConfig(nvdm_kl_warmup=2.0)
    with pytest.raises(ModelError, match="unknown ModelConfig keys \\['layers'\\]"):
        ModelConfig.from_dict({"layers": 3})


def test_config_round_trips_through_dict():
    config = ModelConfig.quick(seed=5)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert config.nvdm_epochs < ModelConfig().nvdm_epochs
