"""``adaptrec train``: one DQN tuning round, the operator's training Job command.

The Job passes the policy's declared hyperparameters and agent settings as JSON
(``--spec-json``). The trainer builds the hybrid recommender, with item features
from the Feast repository when ``--feature-repo`` is given, else computed from the
dataset. It fits a user simulator on every rating, trains the DQN agent in the
tuning environment and runs one greedy episode to choose a set. The result::

    {"hyperparams": {"version", "values"}, "metrics": {...}, "episodes": n}

goes to ``--result-file`` (``/dev/termination-log`` in a Job, where the operator
reads it from the Pod's status, so the trainer needs no API rights) and to stdout.

Under torchrun (``WORLD_SIZE`` > 1) each process collects its own experience with
its own exploration seed, the Q-network is wrapped in DistributedDataParallel so
gradients are averaged across processes, and only rank 0 writes the result.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adaptrec.hyperparams import HyperparamError, HyperparamSet, HyperparamSpace

log = logging.getLogger(__name__)

# The kubelet keeps at most 4096 bytes of a termination message.
MAX_RESULT_BYTES = 4096
# A learning start of 1000 steps would leave a tiny budget with no gradient step;
# 10% of the steps (at least one batch) keeps warm-up in proportion.
WARMUP_FRACTION = 0.1


class TrainError(ValueError):
    """A training input is invalid; the message names it and the fix."""


@dataclass
class TrainSpec:
    """The declared space and the agent settings of one tuning round."""

    space: HyperparamSpace
    agent: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a torch.distributed job (world size 1 alone)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    spec = parser.add_argument_group("what to tune")
    spec.add_argument(
        "--spec-json",
        help="JSON with 'hyperparameters' (list of name, min, max, step, initial) "
        "and 'agent' settings, as the operator passes it; '@FILE' reads a file",
    )
    spec.add_argument(
        "--hyperparams",
        help="YAML file with a top-level 'hyperparameters' list (default: the "
        "packaged space); ignored with --spec-json",
    )
    spec.add_argument("--episodes", type=int, help="override agent.episodes")
    spec.add_argument("--seed", type=int, help="override agent.seed")

    data = parser.add_argument_group("data and features")
    data.add_argument(
        "--dataset",
        default="ml-100k",
        help="dataset name or folder for adaptrec.data.load_dataset "
        "(default: %(default)s)",
    )
    data.add_argument(
        "--feature-repo",
        help="Feast repository to read item features from (point-in-time, as of "
        "the newest rating); without it the features are computed from the dataset",
    )
    data.add_argument(
        "--feast-project", help="Feast project (default: from feature_store.yaml)"
    )
    data.add_argument(
        "--feature-store-yaml",
        help="feature_store.yaml that replaces the repository's own",
    )
    data.add_argument(
        "--model-dir",
        help="a saved HybridRecommender to tune instead of fitting one",
    )
    data.add_argument(
        "--preset",
        choices=("quick", "full"),
        default="full",
        help="model budget: 'quick' for tests (default: %(default)s)",
    )

    env = parser.add_argument_group("environment")
    env.add_argument("--k", type=int, default=10, help="slate length (default: 10)")
    env.add_argument(
        "--users-per-step",
        type=int,
        default=64,
        help="simulated users served per environment step (default: %(default)s)",
    )
    env.add_argument(
        "--episode-length",
        type=int,
        default=20,
        help="environment steps per episode (default: %(default)s)",
    )
    env.add_argument(
        "--device", help="torch device (default: CUDA when available, else CPU)"
    )

    output = parser.add_argument_group("result")
    output.add_argument(
        "--result-file",
        help="where to write the result JSON too, e.g. /dev/termination-log",
    )


# Inputs -------------------------------------------------------------------------


def read_train_spec(spec_json: str | None, hyperparams: str | None) -> TrainSpec:
    """Parse ``--spec-json`` (inline or ``@FILE``), else read ``--hyperparams``."""
    if spec_json is None:
        return TrainSpec(space=HyperparamSpace.from_yaml(hyperparams))
    text = spec_json
    if spec_json.startswith("@"):
        try:
            text = Path(spec_json[1:]).read_text(encoding="utf-8")
        except OSError as error:
            raise TrainError(f"--spec-json file {spec_json[1:]}: {error}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise TrainError(f"--spec-json is not valid JSON: {error}") from None
    if not isinstance(document, Mapping) or "hyperparameters" not in document:
        raise TrainError(
            "--spec-json must be an object with a 'hyperparameters' list and an "
            "optional 'agent' object"
        )
    agent = document.get("agent") or {}
    if not isinstance(agent, Mapping):
        raise TrainError(f"--spec-json agent must be an object, got {agent!r}")
    space = HyperparamSpace.from_dicts(
        document["hyperparameters"], source="--spec-json"
    )
    return TrainSpec(space=space, agent=dict(agent))


def dqn_config(
    agent: Mapping[str, Any],
    episode_length: int,
    device: str | None,
    episodes: int | None = None,
    seed: int | None = None,
    rank: int = 0,
):
    """Map the policy's agent settings onto :class:`DQNConfig`.

    ``epsilon.decaySteps`` becomes the exploration fraction of all steps. Each
    rank explores with its own seed, and DistributedDataParallel copies rank 0's
    initial weights to every rank, so the networks start equal.
    """
    from adaptrec.tuning.dqn import DQNConfig

    defaults = DQNConfig()
    episodes = episodes if episodes is not None else agent.get("episodes")
    episodes = int(episodes if episodes is not None else defaults.episodes)
    if episodes < 1:
        raise TrainError(f"episodes must be at least 1, got {episodes}")
    epsilon = agent.get("epsilon") or {}
    total_steps = episodes * episode_length
    decay_steps = epsilon.get("decaySteps")
    exploration = (
        defaults.exploration_fraction
        if decay_steps is None
        else min(1.0, float(decay_steps) / total_steps)
    )
    batch_size = int(agent.get("batchSize", defaults.batch_size))
    base_seed = seed if seed is not None else int(agent.get("seed", defaults.seed))
    return DQNConfig(
        episodes=episodes,
        gamma=float(agent.get("gamma", defaults.gamma)),
        batch_size=batch_size,
        buffer_size=int(agent.get("replaySize", defaults.buffer_size)),
        learning_starts=min(
            defaults.learning_starts,
            max(batch_size, int(total_steps * WARMUP_FRACTION)),
        ),
        target_network_frequency=min(
            defaults.target_network_frequency, max(1, total_steps // 10)
        ),
        start_e=float(epsilon.get("start", defaults.start_e)),
        end_e=float(epsilon.get("end", defaults.end_e)),
        exploration_fraction=exploration,
        seed=base_seed + rank,
        device=device,
    )


# Distributed ----------------------------------------------------------------------


def distributed_context() -> DistributedContext:
    """Read torchrun's ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    return DistributedContext(
        rank=int(os.environ.get("RANK", "0")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=world_size,
    )


def init_distributed(context: DistributedContext, device: str | None) -> str:
    """Join the process group (NCCL on GPUs, gloo on CPU); return the device."""
    wants_cuda = device is None or device.startswith("cuda")
    use_cuda = torch.cuda.is_available() and wants_cuda
    if use_cuda:
        torch.cuda.set_device(context.local_rank)
        device = f"cuda:{context.local_rank}"
    else:
        device = "cpu"
    if context.enabled and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
        log.info(
            "rank %d of %d joined the process group (%s)",
            context.rank,
            context.world_size,
            torch.distributed.get_backend(),
        )
    return device


def wrap_distributed(agent: Any, context: DistributedContext) -> None:
    """Wrap the agent's Q-network in DistributedDataParallel.

    The optimizer keeps the same parameter tensors, and the target network is
    re-synchronised from the broadcast weights.
    """
    if not context.enabled:
        return
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [context.local_rank] if agent.device.type == "cuda" else None
    agent.q_network = DistributedDataParallel(agent.q_network, device_ids=device_ids)
    agent.target_network.load_state_dict(agent.q_network.module.state_dict())


# Training -------------------------------------------------------------------------


def greedy_episode(agent: Any, env: Any) -> tuple[HyperparamSet, float]:
    """Run one greedy episode; return its final set and mean reward."""
    observation, info = env.reset()
    rewards = []
    done = False
    while not done:
        action = agent.act(observation, greedy=True)
        observation, reward, terminated, truncated, info = env.step(action)
        rewards.append(float(reward))
        done = terminated or truncated
    return env.hyperparams, float(np.mean(rewards)) if rewards else math.nan


def tune(env: Any, config: Any, context: DistributedContext) -> dict[str, Any]:
    """Train the DQN agent on ``env`` and return the training result document."""
    from adaptrec.tuning.dqn import DQNAgent

    agent = DQNAgent.for_env(env, config)
    wrap_distributed(agent, context)
    history = agent.train(env, config.episodes, progress=context.is_main)
    chosen, greedy_reward = greedy_episode(agent, env)
    last = history.episode_mean_rewards[-100:]
    metrics = {
        "greedy_ctr": greedy_reward,
        "train_ctr_last100": float(np.mean(last)) if last else math.nan,
        "env_steps": float(history.steps),
        "steps_per_second": float(history.steps_per_second),
        "wall_seconds": float(history.wall_time_s),
        "world_size": float(context.world_size),
    }
    return {
        "hyperparams": chosen.to_json_dict(),
        "metrics": {key: round(value, 6) for key, value in metrics.items()},
        "episodes": config.episodes,
    }


def result_text(result: Mapping[str, Any]) -> str:
    """Serialise a result compactly; raise if it exceeds the kubelet's limit."""
    text = json.dumps(result, sort_keys=True, separators=(",", ":"), allow_nan=False)
    if len(text.encode("utf-8")) > MAX_RESULT_BYTES:
        raise TrainError(
            f"the training result is {len(text.encode('utf-8'))} bytes, over the "
            f"{MAX_RESULT_BYTES}-byte termination message limit; declare fewer "
            "hyperparameters"
        )
    return text


def _finite(result: dict[str, Any]) -> dict[str, Any]:
    """Drop NaN metrics, which strict JSON cannot carry."""
    metrics = {k: v for k, v in result["metrics"].items() if math.isfinite(v)}
    return {**result, "metrics": metrics}


# Environment ---------------------------------------------------------------------


def _item_embeddings_from_feast(args: argparse.Namespace, dataset: Any):
    """Read content and KG embeddings from the Feast repository, as of the newest
    rating, so training uses the item features that serving reads."""
    import pandas as pd

    from adaptrec.features.store import open_store
    from adaptrec.models import ItemEmbeddings

    repo = Path(args.feature_repo)
    if args.feature_store_yaml:
        # The mounted ConfigMap replaces the image's feature_store.yaml, e.g. to
        # point at Redis; Feast reads the file from the repository folder.
        repo = _repo_with_config(repo, Path(args.feature_store_yaml))
    store = open_store(repo)
    newest = pd.to_datetime(int(dataset.ratings["timestamp"].max()), unit="s", utc=True)
    entity_df = pd.DataFrame(
        {
            "item_id": [str(item) for item in dataset.item_ids],
            "event_timestamp": newest,
        }
    )
    frame = store.get_historical_features(
        entity_df=entity_df,
        features=[
            "item_content:content_embedding",
            "item_content:kg_embedding",
            "item_content:has_kg",
        ],
    ).to_df()
    frame = frame.set_index("item_id").loc[entity_df["item_id"]]
    missing = frame["content_embedding"].isna()
    if missing.any():
        raise TrainError(
            f"the Feast repository {args.feature_repo} has no item_content row for "
            f"{int(missing.sum())} items (first: {frame.index[missing][0]!r}); run "
            "'adaptrec features build' for this dataset"
        )
    embeddings = ItemEmbeddings(
        content=np.stack(frame["content_embedding"].to_numpy()).astype(np.float32),
        kg=np.stack(frame["kg_embedding"].to_numpy()).astype(np.float32),
        kg_mask=frame["has_kg"].to_numpy().astype(bool),
    )
    log.info("read item features of %d items from Feast %s", len(frame), repo)
    return embeddings


def _repo_with_config(repo: Path, config: Path) -> Path:
    import shutil
    import tempfile

    copy = Path(tempfile.mkdtemp(prefix="feature-repo-")) / repo.name
    shutil.copytree(repo, copy)
    shutil.copyfile(config, copy / "feature_store.yaml")
    return copy


def build_environment(args: argparse.Namespace, space: HyperparamSpace, seed: int):
    """Build the recommender, the simulator and the tuning environment."""
    from adaptrec.data import load_dataset
    from adaptrec.evaluation.simulator import UserSimulator
    from adaptrec.models import HybridRecommender, ItemEmbeddings, ModelConfig
    from adaptrec.tuning.env import HyperparamTuningEnv

    device = torch.device(
        args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    )
    dataset = load_dataset(args.dataset)
    model_config = ModelConfig.quick() if args.preset == "quick" else ModelConfig()
    if args.model_dir:
        recommender = HybridRecommender.load(args.model_dir, device=device)
        content = recommender.embeddings.content
    else:
        if args.feature_repo:
            embeddings = _item_embeddings_from_feast(args, dataset)
        else:
            embeddings = ItemEmbeddings.compute(dataset, model_config)
        recommender = HybridRecommender.fit(
            dataset,
            dataset.positives(),
            space,
            model_config,
            embeddings=embeddings,
            device=device,
        )
        content = embeddings.content
    simulator = UserSimulator().fit(dataset, seed=seed, device=device)
    return HyperparamTuningEnv(
        recommender,
        simulator,
        space,
        item_content=content,
        k=args.k,
        users_per_step=args.users_per_step,
        episode_length=args.episode_length,
        seed=seed,
    )


# Entry point ---------------------------------------------------------------------


def _check_arguments(args: argparse.Namespace) -> None:
    for name in ("k", "users_per_step", "episode_length"):
        value = getattr(args, name)
        if value < 1:
            flag = "--" + name.replace("_", "-")
            raise TrainError(f"{flag} must be at least 1, got {value}")
    if args.episodes is not None and args.episodes < 1:
        raise TrainError(f"--episodes must be at least 1, got {args.episodes}")
    if args.feature_repo and not Path(args.feature_repo).is_dir():
        raise TrainError(
            f"--feature-repo {args.feature_repo} is not a folder; pass the Feast "
            "repository (the folder with feature_store.yaml)"
        )


def train_from_args(args: argparse.Namespace) -> int:
    from adaptrec.cli import UsageError

    try:
        _check_arguments(args)
        spec = read_train_spec(args.spec_json, args.hyperparams)
        context = distributed_context()
        device = init_distributed(context, args.device)
        config = dqn_config(
            spec.agent,
            args.episode_length,
            device,
            episodes=args.episodes,
            seed=args.seed,
            rank=context.rank,
        )
    except (TrainError, HyperparamError, ValueError) as error:
        raise UsageError(str(error)) from None

    log.info(
        "tuning %s for %d episodes on %s (rank %d of %d)",
        ", ".join(spec.space.names),
        config.episodes,
        device,
        context.rank,
        context.world_size,
    )
    try:
        env = build_environment(args, spec.space, config.seed)
        result = _finite(tune(env, config, context))
    finally:
        if context.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if not context.is_main:
        return 0
    text = result_text(result)
    if args.result_file:
        Path(args.result_file).write_text(text, encoding="utf-8")
    sys.stdout.write(text + "\n")
    return 0
