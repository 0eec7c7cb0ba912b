"""Hyperparameter tuning environment: Gymnasium API, state, actions, reward, info."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from adaptrec.hyperparams import HyperparamSet, HyperparamSpace
from adaptrec.tuning.env import TuningEnvError, apply_action
from adaptrec.tuning.state import POPULARITY_FEATURES, StateError, StateTracker
from tests.tuning.stand_in import small_env as make_env


class RecordingRecommender:
    """Forwards to a recommender and records the users of each recommend call."""

    def __init__(self, inner):
        self.inner = inner
        self.n_users, self.n_items, self.device = (
            inner.n_users,
            inner.n_items,
            inner.device,
        )
        self.served: list[np.ndarray] = []

    def score(self, users, hyperparams):
        return self.inner.score(users, hyperparams)

    def recommend(self, users, hyperparams, k, exclude_train=True):
        self.served.append(users.cpu().numpy())
        return self.inner.recommend(users, hyperparams, k, exclude_train)

    def user_topics(self, users, beta):
        return self.inner.user_topics(users, beta)

    def item_topics(self, beta):
        return self.inner.item_topics(beta)


def test_env_passes_gymnasium_checker(recommender, simulator, space, content):
    env = make_env(recommender, simulator, space, content)

    with warnings.catch_warnings():
        # The user profile and history features are unbounded by design, which the
        # checker reports as a warning, not an error.
        warnings.filterwarnings("ignore", message=".*infinity.*")
        warnings.filterwarnings("ignore", message=".*render modes.*")
        check_env(env)


def test_observation_layout(recommender, simulator, space, content):
    env = make_env(recommender, simulator, space, content)

    observation, info = env.reset(seed=3)

    n_topics = recommender.n_topics
    expected_dim = 2 * n_topics + 16 + len(POPULARITY_FEATURES) + len(space)
    assert observation.shape == (expected_dim,)
    assert observation.dtype == np.float32
    assert env.observation_space.contains(observation)
    scaled = [(spec.initial - spec.min) / (spec.max - spec.min) for spec in space]
    np.testing.assert_allclose(observation[-len(space) :], scaled, rtol=1e-6)
    assert len(env.tracker.feature_names()) == expected_dim


def test_profile_describes_served_users(simulator, space, content, recommender):
    spy = RecordingRecommender(recommender)
    env = make_env(spy, simulator, space, content)
    observation, _ = env.reset(seed=0)

    env.step(np.ones(len(space), dtype=np.int64))

    served = torch.as_tensor(spy.served[0])
    mu, _ = recommender.user_topics(served, 0.003)
    expected = mu.mean(dim=0).numpy()
    np.testing.assert_allclose(observation[: recommender.n_topics], expected, rtol=1e-5)


def test_reward_is_click_rate(recommender, simulator, space, content):
    env = make_env(recommender, simulator, space, content, users_per_step=32)
    env.reset(seed=1)

    for _ in range(5):
        _, reward, terminated, _, info = env.step(env.action_space.sample())
        assert reward == pytest.approx(info["clicks"] / 32)
        assert info["served"] == 32
        assert 0.0 <= reward <= 1.0
        assert terminated is False


def test_actions_step_and_clip(recommender, simulator, space, content):
    env = make_env(recommender, simulator, space, content, episode_length=30)
    env.reset(seed=0)
    up = np.full(len(space), 2)
    down = np.zeros(len(space), dtype=np.int64)

    _, _, _, _, info = env.step(up)
    for spec in space:
        expected = min(spec.max, spec.initial + spec.step)
        assert info["hyperparams"][spec.name] == pytest.approx(expected)

    for _ in range(12):
        _, _, _, _, info = env.step(down)
    for spec in space:
        assert info["hyperparams"][spec.name] == pytest.approx(spec.min)


def test_info_carries_set_and_version(recommender, simulator, space, content):
    env = make_env(recommender, simulator, space, content)
    _, info = env.reset(seed=0)
    assert info["version"] == space.initial().version

    _, _, _, _, info = env.step(np.array([2, 1, 1, 0, 1, 2]))

    assert info["version"] == HyperparamSet(info["hyperparams"]).version
    assert info["version"] != space.initial().version


def test_episode_truncates_after_length(recommender, simulator, space, content):
    env = make_env(recommender, simulator, space, content, episode_length=4)
    env.reset(seed=0)
    keep = np.ones(len(space), dtype=np.int64)

    flags = [env.step(keep)[3] for _ in range(4)]

    assert flags == [False, False, False, True]


def test_same_seed_same_episode(recommender, simulator, space, content):
    def rollout(seed):
        env = make_env(recommender, simulator, space, content)
        observations, rewards = [env.reset(seed=seed)[0]], []
        actions = np.random.default_rng(0).integers(0, 3, size=(5, len(space)))
        for action in actions:
            observation, reward, *_ = env.step(action)
            observations.append(observation)
            rewards.append(reward)
        return np.array(observations), rewards

    first, second, other = rollout(4), rollout(4), rollout(5)

    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]
    assert not np.array_equal(first[0], other[0])


def test_random_start_on_grid(recommender, simulator, space, content):
    env = make_env(recommender, simulator, space, content, start="random")
    starts = []
    for seed in range(5):
        _, info = env.reset(seed=seed)
        starts.append(info["version"])
        for spec in space:
            assert info["hyperparams"][spec.name] in spec.grid()

    assert len(set(starts)) > 1


def test_day_schedule_follows_episode(recommender, simulator, space, content):
    env = make_env(
        recommender, simulator, space, content, day=lambda episode: episode % 3
    )

    days = [env.reset(seed=0 if i == 0 else None)[1]["day"] for i in range(5)]

    assert days == [0, 1, 2, 0, 1]


def test_history_resets_with_episode(recommender, simulator, space, content):
    env = make_env(recommender, simulator, space, content, users_per_step=64)
    n_topics = recommender.n_topics
    history = slice(n_topics, n_topics + 16)
    popularity = slice(2 * n_topics + 16, 2 * n_topics + 16 + len(POPULARITY_FEATURES))
    first, _ = env.reset(seed=0)
    keep = np.ones(len(space), dtype=np.int64)

    clicked = 0
    for _ in range(3):
        observation, _, _, _, info = env.step(keep)
        clicked += info["clicks"]
    after_reset, _ = env.reset()

    assert clicked > 0
    assert np.all(first[history] == 0)
    assert np.any(observation[history] != 0)
    assert np.all(observation[popularity] > 0)
    assert np.all(after_reset[history] == 0)


def test_apply_action_rejects_bad_choice(space):
    with pytest.raises(TuningEnvError, match="must be 0 \\(-step\\), 1 \\(keep\\)"):
        apply_action(space, space.initial(), [1, 1, 1, 5, 1, 1])
    with pytest.raises(TuningEnvError, match="action has 2 entries"):
        apply_action(space, space.initial(), [1, 1])


def test_invalid_settings_rejected(recommender, simulator, space, content):
    with pytest.raises(TuningEnvError, match="k=500 exceeds"):
        make_env(recommender, simulator, space, content, k=500)
    with pytest.raises(TuningEnvError, match="start must be one of"):
        make_env(recommender, simulator, space, content, start="middle")
    with pytest.raises(TuningEnvError, match="users_per_step must be an integer"):
        make_env(recommender, simulator, space, content, users_per_step=0)
    with pytest.raises(TuningEnvError, match="item_content is required"):
        make_env(recommender, simulator, space, None)


def test_step_before_reset_rejected(recommender, simulator, space, content):
    env = make_env(recommender, simulator, space, content)

    with pytest.raises(TuningEnvError, match="call reset"):
        env.step(np.ones(len(space), dtype=np.int64))


def test_out_of_space_action_rejected(recommender, simulator, space, content):
    env = make_env(recommender, simulator, space, content)
    env.reset(seed=0)

    with pytest.raises(TuningEnvError, match="is not in MultiDiscrete"):
        env.step(np.full(len(space), 3))


def test_untuned_beta_needs_default(recommender, simulator, content):
    weights_only = HyperparamSpace.from_dicts(
        [{"name": "alpha", "min": 0.0, "max": 1.0, "step": 0.5, "initial": 0.5}]
    )

    with pytest.raises(StateError, match="pass default_beta"):
        StateTracker(recommender, weights_only, content)
    tracker = StateTracker(recommender, weights_only, content, default_beta=0.003)
    assert tracker.observation_dim == 2 * recommender.n_topics + 16 + 3 + 1
