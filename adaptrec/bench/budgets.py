"""Budget levels of ``adaptrec bench``: how many folds, seeds, evaluations and
simulated users each part gets.

``tiny`` keeps the harness test to a couple of minutes, ``standard`` fits in about
an hour on a shared 2-core machine, and ``full`` follows the main job's full preset
(five folds, RecBole's documented grids) and takes many hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adaptrec.models import ModelConfig

BUDGET_NAMES = ("tiny", "standard", "full")


@dataclass(frozen=True)
class Budget:
    """Everything a budget level fixes.

    Attributes:
        name: ``tiny``, ``standard`` or ``full``.
        folds: Folds evaluated, out of the five of ``kfold_split(seed=0)``.
        seeds: Tuner seeds per fold; every (fold, seed) pair is one paired sample.
        evaluations: Objective evaluations per tuner, fold and seed. The DQN gets
            the same number of users scored (see :mod:`adaptrec.bench.hybrid`).
        days: Simulated days of the click-through test.
        users_per_day: Simulated users served per day.
        users_per_step: Users per DQN environment step and per served batch.
        episode_length: DQN environment steps per episode.
        model: Settings of the hybrid recommender.
        recbole_budget: Budget name passed to ``run_recbole.py``.
        speed_args: Extra arguments per component benchmark script.
    """

    name: str
    folds: int
    seeds: int
    evaluations: int
    days: int
    users_per_day: int
    users_per_step: int
    episode_length: int
    model: ModelConfig
    recbole_budget: str
    speed_args: dict[str, list[str]] = field(default_factory=dict)


def budget_for(name: str) -> Budget:
    """Return the budget level ``name``.

    Raises:
        ValueError: ``name`` is not one of :data:`BUDGET_NAMES`.
    """
    if name == "tiny":
        return Budget(
            name="tiny",
            folds=1,
            seeds=2,
            evaluations=3,
            days=2,
            users_per_day=128,
            users_per_step=64,
            episode_length=4,
            model=ModelConfig.quick(nvdm_epochs=2),
            recbole_budget="tiny",
            speed_args={
                "throughput": ["--episodes", "2", "--env-steps", "20"],
                "features": ["--inputs", "random", "--reads", "50", "--rounds", "1"],
                "serving": ["--duration", "2", "--rate", "50"],
                "operator": ["--policies", "5", "--single", "1", "--window", "5"],
            },
        )
    if name == "standard":
        return Budget(
            name="standard",
            folds=5,
            seeds=3,
            evaluations=20,
            days=7,
            users_per_day=512,
            users_per_step=64,
            episode_length=10,
            model=ModelConfig.quick(),
            recbole_budget="standard",
            speed_args={
                "throughput": ["--episodes", "20", "--env-steps", "300"],
                "features": ["--reads", "1000", "--rounds", "2"],
                "serving": ["--duration", "15"],
                "operator": ["--policies", "100", "--window", "30"],
            },
        )
    if name == "full":
        return Budget(
            name="full",
            folds=5,
            seeds=3,
            evaluations=100,
            days=7,
            users_per_day=4096,
            users_per_step=64,
            episode_length=10,
            model=ModelConfig(),
            recbole_budget="full",
            speed_args={
                "throughput": ["--episodes", "50", "--env-steps", "1000"],
                "features": [],
                "serving": ["--duration", "30"],
                "operator": ["--policies", "100"],
            },
        )
    raise ValueError(f"unknown budget {name!r}; choose one of {BUDGET_NAMES}")
