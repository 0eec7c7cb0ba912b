"""Serving policies for the simulated click-through test: fixed sets and the DQN
tuner, frozen or learning online."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adaptrec.tuning.dqn import DQNAgent, DQNConfig, DQNError
from adaptrec.tuning.policies import DQNTuner, FixedPolicy
from tests.tuning.stand_in import small_env


@pytest.fixture(scope="module")
def trained_agent(recommender, simulator, space, content):
    env = small_env(recommender, simulator, space, content)
    config = DQNConfig(
        batch_size=16,
        learning_starts=16,
        train_frequency=1,
        hidden_sizes=(32,),
        device="cpu",
        seed=0,
    )
    agent = DQNAgent.for_env(env, config)
    agent.train(env, episodes=8, progress=False)
    return agent, env


def parameters(agent):
    return [p.detach().clone() for p in agent.q_network.parameters()]


def test_fixed_policy_serves_top_k(recommender, space):
    policy = FixedPolicy(recommender, space.initial(), k=5)
    users = np.array([0, 3, 7])

    items = policy(0, users)

    expected, _ = recommender.recommend(torch.tensor(users), space.initial(), 5)
    np.testing.assert_array_equal(items, expected.numpy())


def test_frozen_tuner_leaves_agent_unchanged(
    trained_agent, recommender, simulator, space, content
):
    agent, _ = trained_agent
    before = parameters(agent)
    tuner = DQNTuner(agent, recommender, space, content)

    result = simulator.run_days(
        tuner.recommend, 64, days=2, seed=0, batch_size=16, feedback=tuner.observe
    )

    assert len(tuner.steps) == 8
    assert [step.day for step in tuner.steps] == [0] * 4 + [1] * 4
    assert sum(step.clicks for step in tuner.steps) == sum(result.clicks)
    for old, new in zip(before, parameters(agent), strict=True):
        torch.testing.assert_close(old, new)
    assert tuner.losses == []


def test_frozen_tuner_follows_greedy_actions(
    trained_agent, recommender, simulator, space, content
):
    agent, env = trained_agent
    tuner = DQNTuner(agent, recommender, space, content)
    users = np.arange(16)
    observation = tuner.tracker.observation(torch.tensor(users), space.initial())

    tuner.recommend(0, users)

    action = agent.act(observation)
    expected = {
        spec.name: spec.clip(spec.initial + (int(a) - 1) * spec.step)
        for spec, a in zip(space, action, strict=True)
    }
    assert tuner.steps[0].values == pytest.approx(expected)


def test_learning_tuner_updates_a_copy(
    trained_agent, recommender, simulator, space, content
):
    agent, _ = trained_agent
    before = parameters(agent)
    tuner = DQNTuner(agent, recommender, space, content, learn=True)

    simulator.run_days(
        tuner.recommend, 64, days=2, seed=0, batch_size=16, feedback=tuner.observe
    )

    assert len(tuner.losses) == 7
    changed = [
        not torch.equal(old, new)
        for old, new in zip(before, parameters(tuner.agent), strict=True)
    ]
    assert any(changed)
    for old, new in zip(before, parameters(agent), strict=True):
        torch.testing.assert_close(old, new)


def test_tuner_rejects_mismatched_agent(recommender, space, content):
    agent = DQNAgent(5, len(space), DQNConfig(hidden_sizes=(8,), device="cpu"))

    with pytest.raises(DQNError, match="the agent expects 5 observation values"):
        DQNTuner(agent, recommender, space, content)


def test_observe_needs_recommend(trained_agent, recommender, space, content):
    agent, _ = trained_agent
    tuner = DQNTuner(agent, recommender, space, content)

    with pytest.raises(DQNError, match="preceding recommend"):
        tuner.observe(np.zeros(4), np.full(4, -1))
    tuner.recommend(0, np.arange(4))
    with pytest.raises(DQNError, match=r"clicks must have shape \(4,\)"):
        tuner.observe(np.zeros(3), np.full(3, -1))


def test_tuner_for_env_matches_env_state(trained_agent, space):
    agent, env = trained_agent
    tuner = DQNTuner.for_env(agent, env)
    observation, _ = env.reset(seed=9)
    users = torch.as_tensor(env._users)

    rebuilt = tuner.tracker.observation(users, space.initial())

    np.testing.assert_array_equal(rebuilt, observation)
    assert tuner.k == env.k


def test_greedy_hyperparams_within_space(trained_agent, space):
    agent, env = trained_agent

    chosen = agent.greedy_hyperparams(env, seed=0)

    assert chosen == agent.greedy_hyperparams(env, seed=0)
    assert space.validate(chosen.values_dict) == chosen
