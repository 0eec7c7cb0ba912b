"""The main job: tune the hybrid recommender three ways and report the comparison.

For each evaluated fold:

1. carve a validation split out of the training fold and fit a *tuning* recommender
   on the rest, so no tuner ever sees the test fold;
2. tune with grid search and GP Bayesian optimisation (objective: validation
   NDCG@K) and with the DQN agent (reward: clicks from a simulator fitted on the
   training fold's ratings only);
3. fit an *evaluation* recommender on the whole training fold and score each chosen
   set on the test fold (Precision@K, Recall@K, NDCG@K);
4. serve each chosen set for ``days`` simulated days to users of a simulator fitted
   on all the data, with preference drift, and record click-through per day. The
   DQN runs twice here: frozen after training, and still learning from clicks.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adaptrec.data import Dataset, Fold, kfold_split, load_dataset, validation_split
from adaptrec.evaluation.metrics import evaluate_scores
from adaptrec.evaluation.simulator import SimulatorConfig, UserSimulator, drop_held_out
from adaptrec.hyperparams import HyperparamSet, HyperparamSpace
from adaptrec.models import HybridRecommender, ItemEmbeddings, ModelConfig
from adaptrec.report import describe_machine, summarise_folds, write_report
from adaptrec.tuning.dqn import DQNAgent, DQNConfig, TrainingHistory
from adaptrec.tuning.env import HyperparamTuningEnv
from adaptrec.tuning.policies import DQNTuner, FixedPolicy
from adaptrec.tuning.search import SearchResult, gp_search, grid_search, ndcg_objective

log = logging.getLogger(__name__)

PRESETS = ("quick", "full")


@dataclass
class RunConfig:
    """Settings of one ``adaptrec run``; presets fill the budgets."""

    preset: str = "quick"
    dataset: str = "ml-100k"
    kg_path: str | None = None
    cache_dir: str | None = None
    hyperparams_path: str | None = None
    output: str = "reports/quick"
    positive_threshold: float = 4.0
    n_folds: int = 5
    folds_to_run: int = 2
    k: int = 10
    seed: int = 0
    validation_fraction: float = 0.2
    grid_budget: int = 16
    bayes_budget: int = 16
    dqn_episodes: int = 300
    episode_length: int = 10
    users_per_step: int = 64
    days: int = 7
    users_per_day: int = 512
    device: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig.quick)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> RunConfig:
        """Return the settings of ``preset`` with ``overrides`` applied."""
        if preset == "quick":
            config = cls(preset="quick")
        elif preset == "full":
            config = cls(
                preset="full",
                output="reports/full",
                folds_to_run=5,
                grid_budget=100,
                bayes_budget=100,
                dqn_episodes=100_000,
                episode_length=10,
                users_per_day=4096,
                model=ModelConfig(),
            )
        else:
            raise ValueError(f"unknown preset {preset!r}; choose one of {PRESETS}")
        return dataclasses.replace(config, **overrides)

    def to_json_dict(self) -> dict[str, Any]:
        document = dataclasses.asdict(self)
        return document


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``adaptrec run``'s options; defaults come from the preset."""
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default="quick",
        help="budget preset: quick (2 of 5 folds, small budgets, minutes on 2 CPU "
        "cores) or full (5 folds, 100,000 DQN episodes; default: quick)",
    )
    parser.add_argument(
        "--dataset",
        default=None,
        help="'ml-100k' (downloaded with its knowledge graph) or a local folder in "
        "a GroupLens layout (ml-100k, ml-1m, ml-20m, ml-25m)",
    )
    parser.add_argument(
        "--kg",
        dest="kg_path",
        metavar="PATH",
        default=None,
        help="knowledge-graph triples file",
    )
    parser.add_argument(
        "--hyperparams",
        dest="hyperparams_path",
        metavar="PATH",
        default=None,
        help="YAML file declaring the tunable hyperparameters (default: the "
        "packaged adaptrec/configs/hyperparams.yaml)",
    )
    parser.add_argument("--output", default=None, help="report folder")
    parser.add_argument(
        "--cache-dir", default=None, help="download and embedding cache folder"
    )
    parser.add_argument(
        "--positive-threshold",
        type=float,
        default=None,
        help="ratings at or above this count as positives (default: 4)",
    )
    parser.add_argument(
        "--folds",
        dest="folds_to_run",
        metavar="N",
        type=int,
        default=None,
        help="how many of the 5 folds to evaluate",
    )
    parser.add_argument(
        "--episodes",
        dest="dqn_episodes",
        metavar="N",
        type=int,
        default=None,
        help="DQN training episodes per fold",
    )
    parser.add_argument(
        "--budget",
        type=int,
        default=None,
        help="evaluations for grid search and for Bayesian optimisation each",
    )
    parser.add_argument("--days", type=int, default=None, help="simulated days")
    parser.add_argument(
        "--users-per-day",
        type=int,
        default=None,
        help="simulated users served per day in the click-through test",
    )
    parser.add_argument("-k", type=int, default=None, help="top-K cut-off")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument(
        "--save-model",
        metavar="DIR",
        default=None,
        help="also fit the recommender on every positive and save its artefacts "
        "to DIR, for adaptrec serve --model-dir",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="torch device (default: cuda when available, else cpu)",
    )


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Build a :class:`RunConfig` from parsed options, checking their values."""
    from adaptrec.cli import UsageError

    overrides: dict[str, Any] = {}
    for name in (
        "dataset",
        "kg_path",
        "hyperparams_path",
        "output",
        "cache_dir",
        "positive_threshold",
        "folds_to_run",
        "dqn_episodes",
        "days",
        "users_per_day",
        "k",
        "seed",
        "device",
    ):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if args.budget is not None:
        overrides["grid_budget"] = overrides["bayes_budget"] = args.budget
    config = RunConfig.from_preset(args.preset, **overrides)

    positive_checks = {
        "--folds": config.folds_to_run,
        "--episodes": config.dqn_episodes,
        "--budget": config.grid_budget,
        "--days": config.days,
        "--users-per-day": config.users_per_day,
        "-k": config.k,
    }
    for option, value in positive_checks.items():
        if value < 1:
            raise UsageError(f"{option} must be at least 1, got {value}")
    if config.folds_to_run > config.n_folds:
        raise UsageError(
            f"--folds must be at most {config.n_folds}, got {config.folds_to_run}"
        )
    if config.device is not None:
        try:
            device = torch.device(config.device)
        except RuntimeError:
            raise UsageError(
                f"--device {config.device!r} is not a torch device; use cpu or cuda"
            ) from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UsageError("--device cuda was given but CUDA is not available")
    return config


def run_from_args(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    command = "adaptrec " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    results = run_pipeline(config, command=command)
    report = write_report(results, Path(config.output))
    print(f"report written to {report}")
    if args.save_model:
        save_serving_model(config, Path(args.save_model))
        print(f"model artefacts written to {args.save_model}")
    return 0


def save_serving_model(config: RunConfig, directory: Path) -> None:
    """Fit the recommender on every positive and save it for the model server."""
    device = torch.device(
        config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    )
    cache_dir = Path(config.cache_dir) if config.cache_dir else None
    space = HyperparamSpace.from_yaml(config.hyperparams_path)
    dataset = load_dataset(
        config.dataset,
        cache_dir=cache_dir,
        kg_path=config.kg_path,
        positive_threshold=config.positive_threshold,
    )
    embeddings = ItemEmbeddings.compute(dataset, config.model, cache_dir=cache_dir)
    log.info("fitting the serving recommender on all %d users", dataset.n_users)
    model = HybridRecommender.fit(
        dataset,
        dataset.positives(),
        space,
        config.model,
        embeddings=embeddings,
        device=device,
    )
    model.prepare()
    model.save(directory)


def evaluate_set(
    recommender: HybridRecommender, hyperparams: Mapping[str, float], fold: Fold, k: int
) -> dict[str, float]:
    """Return mean Precision@K, Recall@K and NDCG@K of one set on the test fold."""
    metrics = evaluate_scores(
        lambda users: recommender.score(users, hyperparams),
        fold.train,
        fold.test,
        k=k,
    )
    return {name: float(metrics[name]) for name in ("precision", "recall", "ndcg")}


def simulate_days(
    policy: Any, simulator: UserSimulator, config: RunConfig, feedback: Any = None
) -> list[float]:
    """Serve ``policy`` for the run's simulated days and return CTR per day."""
    result = simulator.run_days(
        policy,
        config.users_per_day,
        config.days,
        seed=config.seed,
        batch_size=config.users_per_step,
        feedback=feedback,
    )
    return result.ctr


def greedy_rollout(
    agent: DQNAgent, env: HyperparamTuningEnv, seed: int
) -> HyperparamSet:
    """Return the set the greedy policy reaches in one episode from the start set.

    This is the DQN's single "chosen" set for the static test-fold metrics; in the
    click-through test the agent keeps choosing per batch of users.
    """
    observation, _ = env.reset(seed=seed)
    done = False
    while not done:
        action = agent.act(observation, greedy=True)
        observation, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    return env.hyperparams


def history_to_json(history: TrainingHistory) -> dict[str, Any]:
    """Reshape the DQN's training history for the report's plots."""
    trajectory = np.asarray(history.hyperparams, dtype=float)
    return {
        "episode_reward": list(history.episode_mean_rewards),
        "hyperparams": {
            name: trajectory[:, column].tolist() if len(trajectory) else []
            for column, name in enumerate(history.hyperparam_names)
        },
        "steps": history.steps,
        "steps_per_second": history.steps_per_second,
        "wall_time_s": history.wall_time_s,
    }


def run_fold(
    dataset: Dataset,
    fold: Fold,
    space: HyperparamSpace,
    embeddings: ItemEmbeddings,
    scoring_simulator: UserSimulator,
    config: RunConfig,
    device: torch.device,
) -> dict[str, Any]:
    """Tune and evaluate every tuner on one fold; return its results."""
    seed = config.seed + fold.index
    log.info("fold %d: fitting the tuning recommender", fold.index)
    fit, valid = validation_split(fold.train, config.validation_fraction, seed=seed)
    tuning_model = HybridRecommender.fit(
        dataset, fit, space, config.model, embeddings=embeddings, device=device
    )

    # Every tuner may visit any beta and gamma on the grid, so their components
    # are trained once up front. Tuning wall times then compare the search alone.
    tuning_model.prepare()

    # Grid search and Bayesian optimisation: validation NDCG@K.
    objective = ndcg_objective(tuning_model, fit, valid, k=config.k)
    searches: dict[str, SearchResult] = {
        "grid": grid_search(objective, space, config.grid_budget, seed=seed),
        "bayes": gp_search(objective, space, config.bayes_budget, seed=seed),
    }

    # DQN: clicks from a simulator that never saw the test fold.
    log.info("fold %d: training the DQN agent", fold.index)
    tuning_simulator = UserSimulator(config.simulator).fit(
        dataset, ratings=drop_held_out(dataset.ratings, fold.test), seed=seed
    )
    env = HyperparamTuningEnv(
        tuning_model,
        tuning_simulator,
        space,
        item_content=embeddings.content,
        k=config.k,
        users_per_step=config.users_per_step,
        episode_length=config.episode_length,
        seed=seed,
    )
    agent = DQNAgent.for_env(env, dqn_config(config, seed, device))
    history = agent.train(env, config.dqn_episodes)
    dqn_set = greedy_rollout(agent, env, seed)

    # Score every chosen set on the test fold and in the drifting simulation.
    log.info("fold %d: evaluating the chosen sets on the test fold", fold.index)
    eval_model = HybridRecommender.fit(
        dataset, fold.train, space, config.model, embeddings=embeddings, device=device
    )
    eval_model.prepare()
    tuners: dict[str, dict[str, Any]] = {}
    static = {
        "initial": (space.initial(), 0, 0.0),
        "grid": (
            searches["grid"].best,
            searches["grid"].evaluations,
            searches["grid"].wall_time_s,
        ),
        "bayes": (
            searches["bayes"].best,
            searches["bayes"].evaluations,
            searches["bayes"].wall_time_s,
        ),
    }
    for name, (hyperparams, evaluations, wall_s) in static.items():
        policy = FixedPolicy(eval_model, hyperparams, k=config.k)
        tuners[name] = {
            "hyperparams": hyperparams.to_json_dict(),
            "metrics": evaluate_set(eval_model, hyperparams, fold, config.k),
            "ctr_per_day": simulate_days(policy, scoring_simulator, config),
            "budget": {"evaluations": evaluations, "wall_s": wall_s},
        }

    # The DQN keeps choosing a set per batch of users, frozen or still learning.
    for name, learn in (("dqn", False), ("dqn_online", True)):
        log.info(
            "fold %d: serving %d simulated days with %s", fold.index, config.days, name
        )
        started = time.perf_counter()
        tuner = DQNTuner(
            agent,
            eval_model,
            space,
            embeddings.content,
            k=config.k,
            learn=learn,
            start=dqn_set,
            history_length=env.tracker.history_length,
            history_dim=env.tracker.history_dim,
        )
        ctr = simulate_days(tuner.recommend, scoring_simulator, config, tuner.observe)
        final_set = tuner.hyperparams
        extra_steps = len(tuner.steps) if learn else 0
        tuners[name] = {
            "hyperparams": (dqn_set if not learn else final_set).to_json_dict(),
            "metrics": evaluate_set(
                eval_model, dqn_set if not learn else final_set, fold, config.k
            ),
            "ctr_per_day": ctr,
            "budget": {
                "evaluations": history.steps + extra_steps,
                "wall_s": history.wall_time_s
                + (time.perf_counter() - started if learn else 0.0),
            },
        }
    return {
        "index": fold.index,
        "tuners": tuners,
        "dqn_history": history_to_json(history),
        "trials": {name: result.to_dict() for name, result in searches.items()},
    }


def dqn_config(config: RunConfig, seed: int, device: torch.device) -> DQNConfig:
    """Scale the DQN's schedule to the episode budget of this run."""
    total_steps = config.dqn_episodes * config.episode_length
    return DQNConfig(
        episodes=config.dqn_episodes,
        seed=seed,
        device=str(device),
        learning_starts=min(1_000, max(1, total_steps // 10)),
        target_network_frequency=min(1_000, max(1, total_steps // 20)),
        buffer_size=min(100_000, max(1_000, total_steps)),
    )


def run_pipeline(config: RunConfig, command: str = "adaptrec run") -> dict[str, Any]:
    """Run the main job and return the results that the report is made from."""
    started = time.perf_counter()
    device = torch.device(
        config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    )
    torch.manual_seed(config.seed)
    space = HyperparamSpace.from_yaml(config.hyperparams_path)
    cache_dir = Path(config.cache_dir) if config.cache_dir else None

    log.info("loading dataset %s", config.dataset)
    dataset = load_dataset(
        config.dataset,
        cache_dir=cache_dir,
        kg_path=config.kg_path,
        positive_threshold=config.positive_threshold,
    )
    folds = kfold_split(dataset, n_folds=config.n_folds, seed=config.seed)
    log.info("computing item embeddings (content and knowledge graph)")
    embeddings = ItemEmbeddings.compute(dataset, config.model, cache_dir=cache_dir)
    log.info("fitting the scoring simulator on all ratings")
    scoring_simulator = UserSimulator(config.simulator).fit(dataset, seed=config.seed)

    fold_results = []
    for fold in folds[: config.folds_to_run]:
        fold_results.append(
            run_fold(
                dataset, fold, space, embeddings, scoring_simulator, config, device
            )
        )

    positives = dataset.positives()
    return {
        "command": command,
        "config": config.to_json_dict(),
        "dataset": {
            "name": dataset.name,
            "n_users": dataset.n_users,
            "n_items": dataset.n_items,
            "n_positives": int(positives.nnz),
            "positive_threshold": dataset.positive_threshold,
            "n_kg_triples": 0 if dataset.kg is None else len(dataset.kg),
        },
        "hyperparameter_space": space.to_dicts(),
        "machine": describe_machine(str(device)),
        "simulator": scoring_simulator.describe(),
        "folds": fold_results,
        "summary": summarise_folds(fold_results),
        "wall_time_s": time.perf_counter() - started,
    }
