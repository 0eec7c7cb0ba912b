"""The hybrid recommender tuned five ways at an equal budget, per fold and seed.

Per fold, as in :func:`adaptrec.pipeline.run_fold`:

1. a *tuning* recommender is fitted on the training fold minus a validation split.
   NVDM and the KG projection are trained for every ``beta`` and ``gamma`` of the
   space up front (``prepare``), so no tuner pays that one-off cost inside its
   measured wall-clock;
2. an *evaluation* recommender is fitted on the whole training fold and scores the
   chosen sets on the test fold.

Per seed, every tuner gets the same budget of ``evaluations``. Grid search, GP
Bayesian optimisation, TPE and random search evaluate validation NDCG@10 that many
times, and each evaluation ranks the catalogue for every validation user. The DQN
gets as many environment steps as score the same number of users,
``ceil(evaluations * n_validation_users / users_per_step)``, rounded up to whole
episodes. Wall-clock is measured for each tuner and reported beside it, not capped.

Every chosen set then serves the same simulated users with the same random draws
(the scoring simulator fitted on all ratings, seeded per seed) for ``days`` days of
preference drift. The DQN serves twice, frozen and still learning from clicks, as in
the main job.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from adaptrec.bench.budgets import Budget
from adaptrec.data import Dataset, Fold, validation_split
from adaptrec.evaluation.simulator import UserSimulator, drop_held_out
from adaptrec.hyperparams import HyperparamSpace
from adaptrec.models import HybridRecommender, ItemEmbeddings
from adaptrec.pipeline import (
    RunConfig,
    dqn_config,
    evaluate_set,
    greedy_rollout,
    history_to_json,
    simulate_days,
)
from adaptrec.tuning.dqn import DQNAgent
from adaptrec.tuning.env import HyperparamTuningEnv
from adaptrec.tuning.policies import DQNTuner, FixedPolicy
from adaptrec.tuning.search import (
    Objective,
    SearchResult,
    gp_search,
    grid_search,
    ndcg_objective,
    random_search,
    tpe_search,
)

log = logging.getLogger(__name__)

SearchFunction = Callable[..., SearchResult]
SEARCHES: dict[str, SearchFunction] = {
    "grid": grid_search,
    "bayes": gp_search,
    "tpe": tpe_search,
    "random": random_search,
}
# Display names in table order; "initial" is the untuned start set.
TUNER_LABELS = {
    "dqn": "DQN",
    "bayes": "GP Bayesian optimisation",
    "grid": "grid search",
    "tpe": "Optuna TPE",
    "random": "random search",
    "initial": "untuned (initial set)",
    "dqn_online": "DQN, learning online",
}
# The tuners that the equal-budget comparison pairs against the DQN.
BASELINES = ("bayes", "grid", "tpe", "random")


@dataclass
class FoldModels:
    """Everything a fold's tuners share: the fitted models and the objective."""

    fold: Fold
    tuning_model: HybridRecommender
    evaluation_model: HybridRecommender
    tuning_simulator: UserSimulator
    objective: Objective
    n_validation_users: int
    setup_s: float


def run_config(budget: Budget, seed: int, episodes: int) -> RunConfig:
    """Return the main job's settings for one seed of ``budget``."""
    return RunConfig.from_preset(
        "quick",
        seed=seed,
        k=10,
        days=budget.days,
        users_per_day=budget.users_per_day,
        users_per_step=budget.users_per_step,
        episode_length=budget.episode_length,
        dqn_episodes=episodes,
        model=budget.model,
    )


def dqn_episodes(budget: Budget, n_validation_users: int) -> int:
    """Return the DQN episodes that score as many users as the search tuners do."""
    users = budget.evaluations * n_validation_users
    steps = math.ceil(users / budget.users_per_step)
    return max(1, math.ceil(steps / budget.episode_length))


def fit_fold(
    dataset: Dataset,
    fold: Fold,
    space: HyperparamSpace,
    embeddings: ItemEmbeddings,
    budget: Budget,
    device: torch.device,
) -> FoldModels:
    """Fit the tuning and evaluation recommenders and the tuning simulator of a fold.

    The validation split is seeded with the fold index, the same split that the
    RecBole export writes as ``valid``.
    """
    started = time.perf_counter()
    fit, valid = validation_split(fold.train, 0.2, seed=fold.index)
    log.info("fold %d: fitting and preparing the tuning recommender", fold.index)
    tuning_model = HybridRecommender.fit(
        dataset, fit, space, budget.model, embeddings=embeddings, device=device
    )
    tuning_model.prepare()
    log.info("fold %d: fitting the evaluation recommender", fold.index)
    evaluation_model = HybridRecommender.fit(
        dataset, fold.train, space, budget.model, embeddings=embeddings, device=device
    )
    tuning_simulator = UserSimulator().fit(
        dataset, ratings=drop_held_out(dataset.ratings, fold.test), seed=fold.index
    )
    return FoldModels(
        fold=fold,
        tuning_model=tuning_model,
        evaluation_model=evaluation_model,
        tuning_simulator=tuning_simulator,
        objective=ndcg_objective(tuning_model, fit, valid, k=10),
        n_validation_users=int((np.diff(valid.indptr) > 0).sum()),
        setup_s=time.perf_counter() - started,
    )


def run_seed(
    models: FoldModels,
    space: HyperparamSpace,
    embeddings: ItemEmbeddings,
    scoring_simulator: UserSimulator,
    budget: Budget,
    seed: int,
    device: torch.device,
) -> dict[str, Any]:
    """Tune with every tuner at one seed and score each chosen set."""
    fold = models.fold
    episodes = dqn_episodes(budget, models.n_validation_users)
    config = run_config(budget, seed, episodes)

    # The four search tuners: validation NDCG@10, `evaluations` times each.
    chosen: dict[str, tuple[Any, float, float]] = {"initial": (space.initial(), 0, 0)}
    trials: dict[str, list[float]] = {}
    for name, search in SEARCHES.items():
        log.info("fold %d seed %d: %s search", fold.index, seed, name)
        result = search(
            models.objective, space, budget.evaluations, seed=seed, progress=False
        )
        chosen[name] = (result.best, result.evaluations, result.wall_time_s)
        trials[name] = result.trial_values

    # The DQN: clicks from the simulator that never saw the test fold.
    log.info("fold %d seed %d: DQN, %d episodes", fold.index, seed, episodes)
    env = HyperparamTuningEnv(
        models.tuning_model,
        models.tuning_simulator,
        space,
        item_content=embeddings.content,
        k=config.k,
        users_per_step=config.users_per_step,
        episode_length=config.episode_length,
        seed=seed,
    )
    agent = DQNAgent.for_env(env, dqn_config(config, seed, device))
    history = agent.train(env, episodes, progress=False)
    dqn_set = greedy_rollout(agent, env, seed)
    users_scored = history.steps * config.users_per_step
    chosen["dqn"] = (
        dqn_set,
        users_scored / models.n_validation_users,
        history.wall_time_s,
    )

    # Score every chosen set on the test fold and in the drifting simulation.
    models.evaluation_model.prepare([values for values, _, _ in chosen.values()])
    tuners: dict[str, dict[str, Any]] = {}
    for name, (hyperparams, evaluations, wall_s) in chosen.items():
        if name == "dqn":
            tuner = _dqn_tuner(agent, models, space, embeddings, env, dqn_set, False)
            ctr = simulate_days(
                tuner.recommend, scoring_simulator, config, tuner.observe
            )
        else:
            policy = FixedPolicy(models.evaluation_model, hyperparams, k=config.k)
            ctr = simulate_days(policy, scoring_simulator, config)
        tuners[name] = {
            "hyperparams": hyperparams.to_json_dict(),
            "metrics": evaluate_set(
                models.evaluation_model, hyperparams, fold, config.k
            ),
            "ctr_per_day": ctr,
            "evaluations": float(evaluations),
            "wall_s": float(wall_s),
        }

    log.info("fold %d seed %d: DQN learning online", fold.index, seed)
    started = time.perf_counter()
    online = _dqn_tuner(agent, models, space, embeddings, env, dqn_set, True)
    ctr = simulate_days(online.recommend, scoring_simulator, config, online.observe)
    tuners["dqn_online"] = {
        "hyperparams": online.hyperparams.to_json_dict(),
        "metrics": evaluate_set(
            models.evaluation_model, online.hyperparams, fold, config.k
        ),
        "ctr_per_day": ctr,
        "evaluations": float(users_scored + len(online.steps) * config.users_per_step)
        / models.n_validation_users,
        "wall_s": history.wall_time_s + time.perf_counter() - started,
    }
    return {
        "fold": fold.index,
        "seed": seed,
        "dqn_episodes": episodes,
        "dqn_steps": history.steps,
        "dqn_history": history_to_json(history),
        "search_trials": trials,
        "tuners": tuners,
    }


def _dqn_tuner(
    agent: DQNAgent,
    models: FoldModels,
    space: HyperparamSpace,
    embeddings: ItemEmbeddings,
    env: HyperparamTuningEnv,
    start: Any,
    learn: bool,
) -> DQNTuner:
    return DQNTuner(
        agent,
        models.evaluation_model,
        space,
        embeddings.content,
        k=env.k,
        learn=learn,
        start=start,
        history_length=env.tracker.history_length,
        history_dim=env.tracker.history_dim,
    )


def run_hybrid(
    dataset: Dataset,
    folds: list[Fold],
    budget: Budget,
    device: torch.device,
) -> dict[str, Any]:
    """Run every tuner on ``budget.folds`` folds and ``budget.seeds`` seeds each."""
    started = time.perf_counter()
    space = HyperparamSpace.from_yaml(None)
    log.info("computing item embeddings (content and knowledge graph)")
    embeddings = ItemEmbeddings.compute(dataset, budget.model)
    log.info("fitting the scoring simulator on all ratings")
    scoring_simulator = UserSimulator().fit(dataset, seed=0)

    runs = []
    setup_s = []
    for fold in folds[: budget.folds]:
        models = fit_fold(dataset, fold, space, embeddings, budget, device)
        setup_s.append(models.setup_s)
        for seed in range(budget.seeds):
            runs.append(
                run_seed(
                    models,
                    space,
                    embeddings,
                    scoring_simulator,
                    budget,
                    seed,
                    device,
                )
            )
    return {
        "settings": dataclasses.asdict(budget) | {"model": budget.model.to_dict()},
        "hyperparameter_space": space.to_dicts(),
        "simulator": scoring_simulator.describe(),
        "fold_setup_s": setup_s,
        "runs": runs,
        "wall_s": time.perf_counter() - started,
    }
