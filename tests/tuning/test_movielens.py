"""Tuning on MovieLens-100K with the real hybrid recommender and user simulator.

The space tunes the four score weights only, so the recommender trains one NVDM and
one KG projection (at the model config's default beta and gamma) and the module
stays within about two minutes on two cores.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from adaptrec.data import kfold_split, load_dataset, validation_split
from adaptrec.evaluation.simulator import UserSimulator, drop_held_out
from adaptrec.hyperparams import HyperparamSpace
from adaptrec.models import HybridRecommender, ItemEmbeddings, ModelConfig
from adaptrec.tuning.dqn import DQNAgent, DQNConfig
from adaptrec.tuning.env import HyperparamTuningEnv
from adaptrec.tuning.policies import DQNTuner, FixedPolicy
from adaptrec.tuning.search import gp_search, grid_search, ndcg_objective

pytestmark = pytest.mark.slow

WEIGHTS = ("alpha", "w_content", "w_kg", "w_topic")


@pytest.fixture(scope="module")
def setting():
    dataset = load_dataset("ml-100k")
    fold = kfold_split(dataset, n_folds=5, seed=0)[0]
    fit, validation = validation_split(fold.train, fraction=0.2, seed=0)
    space = HyperparamSpace(
        [s for s in HyperparamSpace.from_yaml() if s.name in WEIGHTS]
    )
    config = ModelConfig.quick()
    embeddings = ItemEmbeddings.compute(dataset, config)
    recommender = HybridRecommender.fit(
        dataset, fit, space, config, embeddings=embeddings
    )
    simulator = UserSimulator().fit(
        dataset, ratings=drop_held_out(dataset.ratings, fold.test), seed=0
    )
    return dataset, fit, validation, space, recommender, simulator


def make_env(recommender, simulator, space):
    return HyperparamTuningEnv(
        recommender, simulator, space, users_per_step=64, episode_length=10, seed=0
    )


def test_env_passes_checker_on_movielens(setting):
    _, _, _, space, recommender, simulator = setting
    env = make_env(recommender, simulator, space)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")
        warnings.filterwarnings("ignore", message=".*render modes.*")
        check_env(env)

    observation, info = env.reset(seed=0)
    assert observation.shape == env.observation_space.shape
    assert info["version"] == space.initial().version


def test_recommender_beats_random_slates(setting):
    dataset, _, _, space, recommender, simulator = setting
    rng = np.random.default_rng(0)

    served = simulator.run_days(
        FixedPolicy(recommender, space.initial()), 512, days=2, seed=0
    )
    random = simulator.run_days(
        lambda day, users: rng.integers(0, dataset.n_items, size=(len(users), 10)),
        512,
        days=2,
        seed=0,
    )

    assert served.mean_ctr > random.mean_ctr + 0.05


def test_dqn_trains_and_serves(setting):
    _, _, _, space, recommender, simulator = setting
    env = make_env(recommender, simulator, space)
    config = DQNConfig(batch_size=32, learning_starts=32, hidden_sizes=(64,), seed=0)
    agent = DQNAgent.for_env(env, config)

    history = agent.train(env, episodes=4, progress=False)
    frozen = DQNTuner.for_env(agent, env)
    online = DQNTuner.for_env(agent, env, learn=True)
    frozen_result = simulator.run_days(
        frozen.recommend, 256, days=2, seed=1, feedback=frozen.observe
    )
    online_result = simulator.run_days(
        online.recommend, 256, days=2, seed=1, feedback=online.observe
    )

    assert history.steps == 40
    assert history.steps_per_second > 0
    assert all(0.0 <= ctr <= 1.0 for ctr in frozen_result.ctr + online_result.ctr)
    assert len(frozen.steps) == len(online.steps) == 8
    assert frozen.losses == []
    assert len(online.losses) == 7
    assert not torch.equal(
        online.agent.q_network.heads.weight, agent.q_network.heads.weight
    )


def test_searches_score_validation_ndcg(setting):
    _, fit, validation, space, recommender, _ = setting
    objective = ndcg_objective(recommender, fit, validation, k=10)

    grid = grid_search(objective, space, budget=4, progress=False)
    gp = gp_search(objective, space, budget=4, n_startup_trials=2, progress=False)

    assert grid.evaluations == 4
    assert gp.evaluations == 4
    for result in (grid, gp):
        assert all(0.0 <= value <= 1.0 for value in result.trial_values)
        assert result.best_value == max(result.trial_values)
        assert result.best_value > 0.01
