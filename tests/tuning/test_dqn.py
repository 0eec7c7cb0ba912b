"""Branching DQN agent: learning on a toy problem, TD target, schedule, persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

from adaptrec.tuning.dqn import (
    BranchingQNetwork,
    DQNAgent,
    DQNConfig,
    DQNError,
    ReplayBuffer,
    branching_td_target,
    linear_schedule,
)
from tests.tuning.stand_in import TargetPointEnv, small_env

STARTS = [(0, 10), (10, 10), (0, 0), (5, 5), (10, 0)]

TOY_CONFIG = DQNConfig(
    episodes=200,
    gamma=0.9,
    learning_rate=1e-3,
    batch_size=64,
    buffer_size=5_000,
    learning_starts=200,
    train_frequency=1,
    target_network_frequency=50,
    exploration_fraction=0.5,
    hidden_sizes=(64, 64),
    seed=0,
    device="cpu",
)


def greedy_distances(agent, env):
    """Final L1 distance to the target of a greedy episode from each start."""
    distances = []
    for start in STARTS:
        observation, _ = env.reset(options={"point": start})
        for _ in range(env.episode_length):
            observation, *_ = env.step(agent.act(observation))
        distances.append(env.distance())
    return distances


def first_moves_approach(agent, env):
    """Whether the first greedy action from each start lowers the distance."""
    approaches = []
    for start in STARTS:
        observation, _ = env.reset(options={"point": start})
        before = env.distance()
        env.step(agent.act(observation))
        approaches.append(env.distance() < before)
    return approaches


@pytest.fixture(scope="module")
def trained_toy():
    env = TargetPointEnv(target=(8, 2))
    agent = DQNAgent.for_env(env, TOY_CONFIG)
    untrained = greedy_distances(agent, env)
    history = agent.train(env, progress=False)
    return agent, env, history, untrained


def test_greedy_policy_reaches_target(trained_toy):
    agent, env, _, untrained = trained_toy
    initial = [abs(x - 8) + abs(y - 2) for x, y in STARTS]

    trained = greedy_distances(agent, env)

    assert np.mean(untrained) >= 4
    assert np.mean(trained) <= 1.5
    assert all(t < i for t, i in zip(trained, initial, strict=True))
    assert all(first_moves_approach(agent, env))


def test_training_reward_rises(trained_toy):
    _, _, history, _ = trained_toy

    early = np.mean(history.episode_mean_rewards[:20])
    late = np.mean(history.episode_mean_rewards[-20:])

    assert late > early + 0.1


def test_history_records_each_episode(trained_toy):
    _, env, history, _ = trained_toy
    n = TOY_CONFIG.episodes

    assert len(history.episode_returns) == n
    assert len(history.losses) == n
    assert len(history.epsilons) == n
    assert history.steps == n * env.episode_length
    assert history.hyperparam_names == ["x0", "x1"]
    assert len(history.hyperparams) == n
    assert math.isnan(history.losses[0])
    assert not math.isnan(history.losses[-1])
    assert history.epsilons[0] > 0.9
    assert history.epsilons[-1] == pytest.approx(TOY_CONFIG.end_e)
    assert history.steps_per_second > 0
    assert history.to_dict()["losses"][0] is None


def test_td_target_averages_head_values():
    rewards = torch.tensor([1.0, 0.5])
    dones = torch.tensor([0.0, 1.0])
    # Two heads; next-state values per head are the max over three actions.
    next_q = torch.tensor(
        [
            [[0.0, 2.0, 1.0], [4.0, 0.0, 0.0]],
            [[9.0, 9.0, 9.0], [9.0, 9.0, 9.0]],
        ]
    )

    target = branching_td_target(rewards, dones, next_q, gamma=0.5)

    assert target[0].item() == pytest.approx(1.0 + 0.5 * (2.0 + 4.0) / 2)
    assert target[1].item() == pytest.approx(0.5)


def test_double_q_target_uses_online_argmax():
    next_target = torch.tensor([[[1.0, 5.0, 3.0]]])
    next_online = torch.tensor([[[0.0, 0.0, 9.0]]])

    target = branching_td_target(
        torch.zeros(1), torch.zeros(1), next_target, 1.0, next_online
    )

    assert target.item() == pytest.approx(3.0)


def test_network_has_one_head_per_dimension():
    network = BranchingQNetwork(7, n_heads=6, hidden_sizes=(32,), dueling=True)

    q_values = network(torch.zeros(5, 7))
    advantages = q_values - network.value(network.torso(torch.zeros(5, 7)))[:, :, None]

    assert q_values.shape == (5, 6, 3)
    torch.testing.assert_close(advantages.mean(dim=2), torch.zeros(5, 6))


def test_epsilon_falls_linearly():
    assert linear_schedule(1.0, 0.1, 100, 0) == pytest.approx(1.0)
    assert linear_schedule(1.0, 0.1, 100, 50) == pytest.approx(0.55)
    assert linear_schedule(1.0, 0.1, 100, 100) == pytest.approx(0.1)
    assert linear_schedule(1.0, 0.1, 100, 500) == pytest.approx(0.1)


def test_replay_buffer_overwrites_oldest():
    buffer = ReplayBuffer(capacity=3, observation_dim=2, n_heads=2)
    for i in range(5):
        obs = np.full(2, i, dtype=np.float32)
        buffer.add(obs, obs + 1, np.array([i % 3, 0]), float(i), i == 4)

    batch = buffer.sample(50, np.random.default_rng(0), torch.device("cpu"))

    assert len(buffer) == 3
    assert set(batch[0][:, 0].tolist()) == {2.0, 3.0, 4.0}
    torch.testing.assert_close(batch[3], batch[0] + 1)
    assert set(batch[4].tolist()) == {0.0, 1.0}


def test_hard_and_soft_target_updates():
    hard = DQNAgent(3, 2, DQNConfig(hidden_sizes=(8,), device="cpu", tau=1.0))
    soft = DQNAgent(3, 2, DQNConfig(hidden_sizes=(8,), device="cpu", tau=0.25))
    for agent in (hard, soft):
        with torch.no_grad():
            for parameter in agent.q_network.parameters():
                parameter.add_(1.0)
    before = [p.clone() for p in soft.target_network.parameters()]

    hard.update_target_network()
    soft.update_target_network()

    for target, online in zip(
        hard.target_network.parameters(), hard.q_network.parameters(), strict=True
    ):
        torch.testing.assert_close(target, online)
    for target, old in zip(soft.target_network.parameters(), before, strict=True):
        torch.testing.assert_close(target, old + 0.25)


def test_save_load_round_trip(trained_toy, tmp_path):
    agent, _, _, _ = trained_toy
    path = tmp_path / "agent.pt"
    agent.save(path)

    loaded = DQNAgent.load(path)

    observations = np.random.default_rng(0).random((20, 2)).astype(np.float32)
    for observation in observations:
        np.testing.assert_array_equal(loaded.act(observation), agent.act(observation))
    assert loaded.config == agent.config
    assert loaded.global_step == agent.global_step


def test_load_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(DQNError, match="not found"):
        DQNAgent.load(tmp_path / "absent.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(DQNError, match="unknown format"):
        DQNAgent.load(foreign)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(DQNError, match="unreadable"):
        DQNAgent.load(garbage)


def test_act_rejects_wrong_shape():
    agent = DQNAgent(4, 2, DQNConfig(hidden_sizes=(8,), device="cpu"))

    with pytest.raises(DQNError, match=r"observation must have shape \(4,\)"):
        agent.act(np.zeros(5))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"gamma": 1.5}, "gamma must lie in"),
        ({"batch_size": 0}, "batch_size must be an integer"),
        ({"tau": 0.0}, "tau must be > 0"),
        ({"hidden_sizes": ()}, "hidden_sizes must be"),
        ({"start_e": 0.1, "end_e": 0.5}, "end_e .* must not exceed start_e"),
    ],
)
def test_invalid_config_rejected(settings, message):
    with pytest.raises(DQNError, match=message):
        DQNConfig(**settings)


def test_for_env_rejects_other_action_spaces():
    env = TargetPointEnv()
    env.action_space = spaces.Discrete(9)

    with pytest.raises(DQNError, match="MultiDiscrete"):
        DQNAgent.for_env(env)


def test_trains_on_tuning_env(recommender, simulator, space, content):
    env = small_env(recommender, simulator, space, content)
    config = DQNConfig(
        batch_size=8, learning_starts=8, hidden_sizes=(32,), device="cpu", seed=0
    )
    agent = DQNAgent.for_env(env, config)

    history = agent.train(env, episodes=4, progress=False)

    assert history.steps == 20
    assert history.hyperparam_names == space.names
    assert not math.isnan(history.losses[-1])
    for row in history.hyperparams:
        for spec, value in zip(space, row, strict=True):
            assert spec.min <= value <= spec.max
