"""User simulator: calibration, cascade position bias, drift, seeding and input checks.

The synthetic dataset has ratings drawn from a planted factor model, so a fitted
preference model can recover which held-out items a user likes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from adaptrec.evaluation.simulator import (
    SimulatorConfig,
    SimulatorError,
    UserSimulator,
    drop_held_out,
)
from tests.tuning.stand_in import synthetic_dataset

SMALL = SimulatorConfig(factors=4, iterations=8)


@pytest.fixture(scope="module")
def dataset():
    return synthetic_dataset(n_users=120, n_items=150, density=0.3, seed=3)


@pytest.fixture(scope="module")
def simulator(dataset):
    return UserSimulator(SMALL).fit(dataset, seed=0, device="cpu")


def held_out_split(dataset, fraction=0.2, seed=0):
    rng = np.random.default_rng(seed)
    held = rng.random(len(dataset.ratings)) < fraction
    return dataset.ratings[~held], dataset.ratings[held]


def test_liked_held_out_items_more_attractive(dataset):
    train, held_out = held_out_split(dataset)
    simulator = UserSimulator(SMALL).fit(dataset, ratings=train, seed=0, device="cpu")
    liked = held_out[held_out["rating"] >= dataset.positive_threshold]
    rng = np.random.default_rng(1)
    random_items = rng.integers(0, dataset.n_items, size=len(liked))

    users = liked["user"].to_numpy()
    p_liked = simulator.attractiveness(users, liked["item"].to_numpy()[:, None])[:, 0]
    p_random = simulator.attractiveness(users, random_items[:, None])[:, 0]

    assert simulator.link_a > 0
    assert p_liked.mean() > 1.5 * p_random.mean()


def test_link_fitted_on_all_rating_levels(simulator, dataset):
    described = simulator.describe()
    link = described["link"]
    n_positive = int((dataset.ratings["rating"] >= dataset.positive_threshold).sum())

    assert described["n_ratings"] == len(dataset.ratings)
    assert link["positives"] == n_positive
    assert link["observed_negatives"] == len(dataset.ratings) - n_positive
    assert link["sampled_unobserved"] > 0
    assert math.isfinite(link["a"])
    assert math.isfinite(link["b"])
    assert "no slate positions" in described["position_bias"]["source"]


def test_link_probability_matches_observed_rate(simulator, dataset):
    # Weighted logistic regression matches the labels' weighted mean at its optimum,
    # so the mean attractiveness over all user-item pairs is the positives' share.
    users = np.arange(dataset.n_users)
    items = np.tile(np.arange(dataset.n_items), (dataset.n_users, 1))
    mean_attractiveness = simulator.attractiveness(users, items).mean()
    positives = (dataset.ratings["rating"] >= dataset.positive_threshold).sum()
    share = positives / (dataset.n_users * dataset.n_items)

    assert mean_attractiveness == pytest.approx(share, rel=0.1)


def test_cascade_probabilities_follow_formula(simulator):
    users = np.array([0, 1, 2])
    items = np.array([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])
    attractive = simulator.attractiveness(users, items)
    examined = (1.0 / np.arange(1, 5)) ** simulator.config.eta

    probabilities = simulator.click_probabilities(users, items)

    expected_first = examined[0] * attractive[:, 0]
    expected_second = (1 - expected_first) * examined[1] * attractive[:, 1]
    expected_total = 1 - np.prod(1 - examined * attractive, axis=1)
    np.testing.assert_allclose(probabilities[:, 0], expected_first)
    np.testing.assert_allclose(probabilities[:, 1], expected_second)
    np.testing.assert_allclose(probabilities.sum(axis=1), expected_total)


def test_position_bias_lowers_later_clicks(dataset):
    simulator = UserSimulator(SimulatorConfig(factors=4, iterations=8, eta=1.0)).fit(
        dataset, seed=0, device="cpu"
    )
    users = np.arange(dataset.n_users)
    item = simulator.attractiveness(users, np.zeros((len(users), 1), int))[:, 0]
    best = int(np.argmax(item))
    least = np.argsort(simulator.attractiveness([best], np.arange(150)[None])[0])
    filler = least[:9]

    # The same attractive item at position 1 and at position 5 among fillers.
    first = np.concatenate([[0], filler])[None]
    fifth = np.concatenate([filler[:4], [0], filler[4:]])[None]
    p_first = simulator.click_probabilities([best], first)[0, 0]
    p_fifth = simulator.click_probabilities([best], fifth)[0, 4]
    a = simulator.attractiveness([best], [[0]])[0, 0]

    assert p_first == pytest.approx(a)
    assert p_fifth < p_first
    # Examined with probability 1/5 once the four fillers were passed over.
    fillers = simulator.attractiveness([best], [filler[:4]])[0]
    survive = np.prod(1 - fillers / np.arange(1, 5))
    assert p_fifth == pytest.approx(survive * a / 5)


def test_simulated_clicks_match_probabilities(simulator):
    users = np.repeat(np.arange(4), 5000)
    items = np.tile(np.array([3, 17, 40, 41, 90]), (len(users), 1))
    rng = np.random.default_rng(7)

    clicks, positions = simulator.simulate(users, items, day=0, rng=rng)

    for user in range(4):
        mask = users == user
        expected = simulator.click_probabilities([user], items[:1])[0]
        observed = (
            np.bincount(positions[mask][positions[mask] >= 0], minlength=5) / 5000
        )
        np.testing.assert_allclose(observed, expected, atol=0.02)
    assert set(np.unique(clicks)) <= {0, 1}
    assert np.all((positions >= 0) == (clicks == 1))


def test_one_click_per_slate_at_most(simulator):
    users = np.arange(50)
    items = np.tile(np.arange(10), (50, 1))
    clicks, positions = simulator.simulate(users, items, 0, np.random.default_rng(0))

    assert clicks.shape == (50,)
    assert positions.shape == (50,)
    assert np.all(positions < 10)


def test_same_seed_same_clicks(simulator):
    users = np.arange(60)
    items = np.tile(np.arange(10), (60, 1))

    first = simulator.simulate(users, items, 2, np.random.default_rng(11))
    second = simulator.simulate(users, items, 2, np.random.default_rng(11))
    other = simulator.simulate(users, items, 2, np.random.default_rng(12))

    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[1], other[1])


def test_same_seed_same_fit(dataset):
    first = UserSimulator(SMALL).fit(dataset, seed=5, device="cpu")
    second = UserSimulator(SMALL).fit(dataset, seed=5, device="cpu")

    np.testing.assert_array_equal(first.P, second.P)
    np.testing.assert_array_equal(first.drift_targets, second.drift_targets)
    np.testing.assert_array_equal(first.trending_items, second.trending_items)
    assert first.link_a == second.link_a


def test_day_zero_equals_fit(simulator, dataset):
    users = np.arange(dataset.n_users)

    np.testing.assert_array_equal(simulator.user_vectors(users, 0), simulator.P)
    item = np.array([[5]])
    fitted = (
        simulator.global_mean
        + simulator.user_bias[0]
        + simulator.item_bias[5]
        + simulator.P[0] @ simulator.Q[5]
    )
    assert simulator.predicted_ratings([0], item, 0)[0, 0] == pytest.approx(fitted)


@pytest.mark.parametrize("day", [1, 3, 7])
def test_drift_moves_by_configured_amount(simulator, dataset, day):
    users = np.arange(dataset.n_users)
    rate = simulator.config.drift_per_day
    gap = np.linalg.norm(simulator.drift_targets - simulator.P, axis=1)

    moved = np.linalg.norm(simulator.user_vectors(users, day) - simulator.P, axis=1)

    np.testing.assert_allclose(moved, rate * day * gap)
    assert np.all(gap > 0)


def test_drift_stops_at_target(dataset):
    simulator = UserSimulator(
        SimulatorConfig(factors=4, iterations=8, drift_per_day=0.25)
    ).fit(dataset, seed=0, device="cpu")
    users = np.arange(dataset.n_users)

    np.testing.assert_allclose(
        simulator.user_vectors(users, 4), simulator.drift_targets
    )
    np.testing.assert_allclose(
        simulator.user_vectors(users, 9), simulator.drift_targets
    )


def test_drift_target_is_another_user(simulator, dataset):
    matches = [
        int(np.flatnonzero(np.all(target == simulator.P, axis=1))[0])
        for target in simulator.drift_targets
    ]

    assert sorted(matches) == list(range(dataset.n_users))
    assert all(match != user for user, match in enumerate(matches))


def test_genre_drift_targets_rare_genre(dataset):
    simulator = UserSimulator(
        SimulatorConfig(factors=4, iterations=8, drift_target="genre")
    ).fit(dataset, seed=0, device="cpu")
    genres = dataset.items["genres"]
    names = sorted({g for gs in genres for g in gs})
    counts = {name: np.zeros(dataset.n_users) for name in names}
    for user, item in zip(
        dataset.ratings["user"], dataset.ratings["item"], strict=True
    ):
        for genre in genres[item]:
            counts[genre][user] += 1
    members = {name: [i for i, gs in enumerate(genres) if name in gs] for name in names}

    means = {name: simulator.Q[members[name]].mean(axis=0) for name in names}

    for user in range(dataset.n_users):
        target = simulator.drift_targets[user]
        eligible = [n for n in names if len(members[n]) >= 10]
        fewest = min(counts[n][user] for n in eligible)
        rarest = [n for n in eligible if counts[n][user] == fewest]
        cosines = [
            np.dot(means[n], target) / np.linalg.norm(means[n]) / np.linalg.norm(target)
            for n in rarest
        ]
        assert max(cosines) == pytest.approx(1.0)
        assert np.linalg.norm(target) == pytest.approx(
            np.linalg.norm(simulator.P[user])
        )


def test_trending_items_gain_popularity(simulator, dataset):
    trending = simulator.trending_items
    steady = np.setdiff1d(np.arange(dataset.n_items), trending)[:5]
    assert len(trending) == round(simulator.config.trending_fraction * dataset.n_items)
    zero_drift = UserSimulator(
        SimulatorConfig(factors=4, iterations=8, drift_per_day=0.0)
    ).fit(dataset, seed=0, device="cpu")
    items = np.concatenate([zero_drift.trending_items, steady])[None]

    gain = zero_drift.predicted_ratings([0], items, 3) - zero_drift.predicted_ratings(
        [0], items, 0
    )

    n_trending = len(zero_drift.trending_items)
    expected = 3 * zero_drift.config.popularity_gain_per_day
    np.testing.assert_allclose(gain[0, :n_trending], expected)
    np.testing.assert_allclose(gain[0, n_trending:], 0.0, atol=1e-12)


def test_run_days_same_users_for_every_policy(simulator, dataset):
    seen: dict[str, list[np.ndarray]] = {"a": [], "b": []}

    def policy(name, offset):
        def serve(day, users):
            seen[name].append(users.copy())
            return (np.arange(10)[None] + offset + users[:, None]) % dataset.n_items

        return serve

    first = simulator.run_days(policy("a", 0), 100, days=3, seed=4, batch_size=32)
    second = simulator.run_days(policy("b", 50), 100, days=3, seed=4, batch_size=32)

    assert len(seen["a"]) == 3 * 4
    for a, b in zip(seen["a"], seen["b"], strict=True):
        np.testing.assert_array_equal(a, b)
    assert first.days == [0, 1, 2]
    assert first.served == [100, 100, 100]
    assert len(first.ctr) == 3
    assert all(0.0 <= ctr <= 1.0 for ctr in first.ctr)
    repeat = simulator.run_days(policy("a", 0), 100, days=3, seed=4, batch_size=32)
    assert repeat.clicks == first.clicks
    assert second.served == first.served


def test_run_days_reports_feedback(simulator, dataset):
    received = []

    def serve(day, users):
        return np.tile(np.arange(10), (len(users), 1))

    result = simulator.run_days(
        serve,
        50,
        days=2,
        seed=0,
        batch_size=20,
        feedback=lambda clicks, positions: received.append((clicks, positions)),
    )

    assert [len(c) for c, _ in received] == [20, 20, 10, 20, 20, 10]
    assert sum(int(c.sum()) for c, _ in received) == sum(result.clicks)


def test_better_policy_gets_higher_ctr(simulator, dataset):
    users = np.arange(dataset.n_users)
    items = np.tile(np.arange(dataset.n_items), (dataset.n_users, 1))
    ranked = np.argsort(-simulator.attractiveness(users, items), axis=1)

    best = simulator.run_days(lambda d, u: ranked[u, :10], 400, days=2, seed=1)
    worst = simulator.run_days(lambda d, u: ranked[u, -10:], 400, days=2, seed=1)

    assert best.mean_ctr > worst.mean_ctr + 0.1


def test_drop_held_out_removes_test_pairs(dataset):
    held = dataset.ratings.iloc[:10]
    matrix = sp.csr_matrix(
        (np.ones(10), (held["user"], held["item"])),
        shape=(dataset.n_users, dataset.n_items),
    )

    kept = drop_held_out(dataset.ratings, matrix)

    assert len(kept) == len(dataset.ratings) - 10
    assert not set(zip(kept["user"], kept["item"], strict=True)) & set(
        zip(held["user"], held["item"], strict=True)
    )


def test_tensor_inputs_accepted(simulator):
    users = torch.tensor([0, 1])
    items = torch.tensor([[0, 1, 2], [3, 4, 5]])

    from_tensor = simulator.click_probabilities(users, items, 1)
    from_numpy = simulator.click_probabilities(users.numpy(), items.numpy(), 1)

    np.testing.assert_array_equal(from_tensor, from_numpy)


def test_unfitted_simulator_rejected():
    with pytest.raises(SimulatorError, match="not fitted"):
        UserSimulator().click_probabilities([0], [[0]])


@pytest.mark.parametrize(
    ("users", "items", "day", "message"),
    [
        ([0], [[10_000]], 0, "item index 10000 is out of range"),
        ([-1], [[0]], 0, "user index -1 is out of range"),
        ([0, 1], [[0]], 0, "items must have shape"),
        ([0], [[0]], -1, "day must be a finite number >= 0"),
        ([0], [[0.5]], 0, "item indices must be integers"),
    ],
)
def test_invalid_slates_rejected(simulator, users, items, day, message):
    with pytest.raises(SimulatorError, match=message):
        simulator.click_probabilities(users, items, day)


def test_invalid_config_rejected():
    with pytest.raises(SimulatorError, match="drift_target='sideways' is invalid"):
        SimulatorConfig(drift_target="sideways")
    with pytest.raises(SimulatorError, match="eta=-1"):
        SimulatorConfig(eta=-1)


def test_ratings_outside_dataset_rejected(dataset):
    bad = pd.DataFrame({"user": [0], "item": [dataset.n_items], "rating": [4.0]})

    with pytest.raises(SimulatorError, match="item index 150 is out of range"):
        UserSimulator(SMALL).fit(dataset, ratings=bad)


def test_ratings_missing_columns_rejected(dataset):
    with pytest.raises(SimulatorError, match=r"missing columns \['rating'\]"):
        UserSimulator(SMALL).fit(dataset, ratings=dataset.ratings[["user", "item"]])
