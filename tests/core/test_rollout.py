"""The rollout file shared by the operator and the model server."""

import json
from collections import Counter

import pytest

from adaptrec.hyperparams import HyperparamSpace
from adaptrec.rollout import Rollout, RolloutError, user_bucket

# SHA-256 buckets of fixed ids. Servers of different releases must agree on them,
# so a change here moves users between stable and candidate mid-rollout.
BUCKET_OF_42 = 37
BUCKET_OF_ALICE = 7


@pytest.fixture
def space():
    return HyperparamSpace.from_yaml()


@pytest.fixture
def candidate(space):
    return space.validate({**space.initial().values_dict, "alpha": 0.9})


def test_user_bucket_is_stable_and_uniform():
    assert user_bucket("42") == user_bucket(42)
    assert user_bucket("42") == BUCKET_OF_42
    assert user_bucket("alice") == BUCKET_OF_ALICE
    counts = Counter(user_bucket(user) for user in range(20_000))
    assert set(counts) == set(range(100))
    # 200 users per bucket on average; a uniform hash stays well within 40%.
    assert max(counts.values()) < 280
    assert min(counts.values()) > 120


def test_assign_splits_by_percent(space, candidate):
    rollout = Rollout(space.initial(), candidate, canary_percent=30)
    assigned = Counter(rollout.assign(user).version for user in range(10_000))
    share = assigned[candidate.version] / 10_000
    assert 0.27 < share < 0.33
    # A user keeps its version for as long as the percentage stays.
    assert all(rollout.assign(7) == rollout.assign(7) for _ in range(5))


def test_zero_percent_serves_stable(space, candidate):
    rollout = Rollout(space.initial(), candidate, canary_percent=0)
    assert {rollout.assign(user).version for user in range(500)} == {
        space.initial().version
    }


@pytest.mark.parametrize(
    ("percent", "fragment"),
    [
        (100, "0..99, got 100"),
        (-1, "0..99, got -1"),
        (12.5, "an integer"),
        (True, "an integer"),
    ],
)
def test_invalid_percent_rejected(space, candidate, percent, fragment):
    with pytest.raises(RolloutError, match=fragment):
        Rollout(space.initial(), candidate, canary_percent=percent)


def test_percent_without_candidate_rejected(space):
    with pytest.raises(RolloutError, match="there is no candidate"):
        Rollout(space.initial(), None, canary_percent=10)


def test_file_round_trip(tmp_path, space, candidate):
    path = tmp_path / "rollout.json"
    rollout = Rollout(space.initial(), candidate, canary_percent=25)
    path.write_text(json.dumps(rollout.to_json_dict()))
    assert Rollout.read(path, space) == rollout


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "is not valid JSON"),
        ("[]", "must be a JSON object"),
        ("{}", "missing the required 'stable'"),
        ('{"stable": {"values": {"alpha": 5}}}', "invalid set"),
        ('{"stable": null, "candidate": null}', "missing the required 'stable'"),
        ('{"stable": {}, "extra": 1}', "unknown keys ['extra']"),
    ],
)
def test_invalid_file_names_the_file(tmp_path, space, content, fragment):
    path = tmp_path / "rollout.json"
    path.write_text(content)
    with pytest.raises(RolloutError) as raised:
        Rollout.read(path, space)
    assert str(path) in str(raised.value)
    assert fragment in str(raised.value)


def test_missing_file_rejected(tmp_path):
    with pytest.raises(RolloutError, match="cannot read rollout file"):
        Rollout.read(tmp_path / "absent.json")
