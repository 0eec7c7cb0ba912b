"""`adaptrec train`: inputs, the agent settings, the result, and DDP on CPU.

The environment here is the real HyperparamTuningEnv and UserSimulator on a small
synthetic dataset, with the tuning tests' stand-in recommender in place of the
hybrid one, so a round takes seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from adaptrec import train
from adaptrec.hyperparams import HyperparamError, HyperparamSpace
from adaptrec.operator.jobs import parse_result

REPO_ROOT = Path(__file__).resolve().parents[2]
SPACE = HyperparamSpace.from_yaml()
SPEC = {
    "hyperparameters": SPACE.to_dicts(),
    "agent": {
        "episodes": 3,
        "gamma": 0.9,
        "epsilon": {"start": 1.0, "end": 0.1, "decaySteps": 10},
        "replaySize": 500,
        "batchSize": 8,
        "seed": 3,
    },
}


def small_env(seed: int):
    from adaptrec.evaluation.simulator import SimulatorConfig, UserSimulator
    from adaptrec.tuning.env import HyperparamTuningEnv
    from tests.tuning.stand_in import (
        StandInRecommender,
        synthetic_content,
        synthetic_dataset,
    )

    dataset = synthetic_dataset(n_users=40, n_items=60)
    content = synthetic_content(dataset)
    recommender = StandInRecommender(dataset.positives(), content)
    simulator = UserSimulator(SimulatorConfig(factors=4, iterations=3)).fit(
        dataset, seed=0, device="cpu"
    )
    return HyperparamTuningEnv(
        recommender,
        simulator,
        SPACE,
        item_content=content,
        k=5,
        users_per_step=8,
        episode_length=5,
        seed=seed,
    )


def test_inline_spec_parsed():
    spec = train.read_train_spec(json.dumps(SPEC), None)
    assert spec.space.names == SPACE.names
    assert spec.agent["replaySize"] == 500


def test_spec_file_parsed(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    assert train.read_train_spec(f"@{path}", None).agent["seed"] == 3


def test_packaged_space_without_spec():
    assert train.read_train_spec(None, None).space.names == SPACE.names


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{", "not valid JSON"),
        ('{"agent": {}}', "hyperparameters"),
        ('{"hyperparameters": [], "agent": 3}', "agent must be an object"),
        ("@/nonexistent/spec.json", "nonexistent"),
    ],
)
def test_bad_spec_rejected(text, match):
    with pytest.raises(train.TrainError, match=match):
        train.read_train_spec(text, None)


def test_bad_bounds_rejected():
    entries = SPACE.to_dicts()
    entries[0]["initial"] = 9.0
    with pytest.raises(HyperparamError, match="alpha"):
        train.read_train_spec(json.dumps({"hyperparameters": entries}), None)


def test_agent_settings_map_to_dqn():
    config = train.dqn_config(SPEC["agent"], 5, "cpu", rank=1)
    assert config.episodes == 3
    assert config.gamma == 0.9
    assert config.buffer_size == 500
    assert config.batch_size == 8
    assert config.end_e == 0.1
    assert config.exploration_fraction == pytest.approx(10 / 15)
    assert config.seed == 4
    assert config.learning_starts <= 15


def test_overrides_win():
    config = train.dqn_config(SPEC["agent"], 5, "cpu", episodes=7, seed=11)
    assert config.episodes == 7
    assert config.seed == 11


def test_oversized_result_rejected():
    result = {"hyperparams": {}, "metrics": {"x" * 5000: 1.0}, "episodes": 1}
    with pytest.raises(train.TrainError, match="4096"):
        train.result_text(result)


def test_round_result_passes_operator_checks():
    config = train.dqn_config(SPEC["agent"], 5, "cpu")
    result = train.tune(small_env(config.seed), config, train.DistributedContext())
    parsed = parse_result(train.result_text(result), SPACE)
    assert parsed.episodes == 3
    assert 0.0 <= parsed.metrics["greedy_ctr"] <= 1.0
    assert parsed.metrics["env_steps"] == 15
    assert parsed.hyperparams.version == result["hyperparams"]["version"]


def _ddp_rank(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    context = train.distributed_context()
    device = train.init_distributed(context, "cpu")
    config = train.dqn_config(SPEC["agent"], 5, device, rank=context.rank)
    try:
        from adaptrec.tuning.dqn import DQNAgent

        env = small_env(config.seed)
        agent = DQNAgent.for_env(env, config)
        train.wrap_distributed(agent, context)
        agent.train(env, config.episodes, progress=False)
        weights = torch.cat(
            [p.detach().flatten() for p in agent.q_network.module.parameters()]
        )
        torch.save(weights, Path(out_dir) / f"weights-{rank}.pt")
        (Path(out_dir) / f"backend-{rank}.txt").write_text(
            torch.distributed.get_backend()
        )
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_keeps_networks_equal(tmp_path):
    from tests.support.prometheus import free_port

    mp.spawn(
        _ddp_rank,
        args=(2, free_port(), str(tmp_path)),
        nprocs=2,
        join=True,
    )
    first = torch.load(tmp_path / "weights-0.pt")
    second = torch.load(tmp_path / "weights-1.pt")
    assert (tmp_path / "backend-0.txt").read_text() == "gloo"
    # Each rank explored with its own seed, so only gradient averaging keeps
    # the two Q-networks equal.
    assert torch.equal(first, second)


@pytest.mark.slow
def test_cli_rejects_bad_spec():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "adaptrec"), "train", "--spec-json", "{"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--spec-json is not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr
