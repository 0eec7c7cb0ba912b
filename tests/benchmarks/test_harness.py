"""``adaptrec bench`` end to end on the tiny budget, and its pieces on their own.

The harness test runs the real CLI on MovieLens-100K: the hybrid recommender, all
five tuners, the user simulator and, when RecBole's virtual environment exists,
RecBole itself (Pop and EASE only, to stay within a couple of minutes). Without
that environment it checks that the page names the reason RecBole was skipped.
It takes about two minutes on a shared 2-core machine.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from adaptrec.bench import PARTS, parse_parts, render_stored
from adaptrec.bench.budgets import budget_for
from adaptrec.bench.environment import RECBOLE_SETUP, SOURCE_ROOT, recbole_venv
from adaptrec.bench.hybrid import BASELINES, dqn_episodes
from adaptrec.bench.recbole import (
    RecBoleRunner,
    RecBoleUnavailable,
    export_folds,
)
from adaptrec.bench.render import render_page
from adaptrec.bench.speed import PartSkipped, SpeedPart, run_speed_part
from adaptrec.bench.stats import paired_t_interval
from adaptrec.cli import UsageError

TUNERS = {"dqn", "bayes", "grid", "tpe", "random", "initial", "dqn_online"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def recbole_available() -> bool:
    return (recbole_venv() / "bin" / "python").is_file()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Run the CLI once on the tiny budget; return its output folder and process."""
    output = tmp_path_factory.mktemp("bench")
    command = [
        str(Path(sys.executable).parent / "adaptrec"),
        "bench",
        "--budget",
        "tiny",
        "--parts",
        "quality,tuners",
        "--output",
        str(output),
        "--recbole-models",
        "Pop",
        "EASE",
    ]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=output,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    return output, completed


@pytest.mark.slow
def test_harness_exits_cleanly(tiny_run):
    output, completed = tiny_run

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "benchmarks written to" in completed.stdout
    assert (output / "BENCHMARKS.md").is_file()


@pytest.mark.slow
def test_harness_page_sections_and_parts(tiny_run):
    output, _ = tiny_run
    page = (output / "BENCHMARKS.md").read_text()

    assert "## Quality against RecBole" in page
    assert "## Tuners at an equal budget" in page
    assert "## Reading the results" in page
    assert "adaptrec bench --budget tiny" in page
    for part in ("throughput", "features", "serving", "operator"):
        assert f"| {part} | not run |" in page


@pytest.mark.slow
def test_harness_page_is_rendered_from_json(tiny_run):
    output, _ = tiny_run
    page_path = output / "BENCHMARKS.md"
    page = page_path.read_text()
    page_path.unlink()

    render_stored(output)

    assert page_path.read_text() == page


@pytest.mark.slow
def test_harness_records_machine_and_date(tiny_run):
    output, _ = tiny_run
    index = json.loads((output / "benchmarks/results/bench.json").read_text())

    assert index["machine"]["cores"] >= 1
    assert index["machine"]["memory_gib"] > 0
    assert index["machine"]["cpu"]
    assert "gpu" in index["machine"]
    assert index["date"].startswith("20")
    assert index["budget"] == "tiny"


@pytest.mark.slow
def test_harness_tuners_equal_budget(tiny_run):
    output, _ = tiny_run
    tuners = json.loads((output / "benchmarks/results/tuners.json").read_text())
    budget = budget_for("tiny")

    assert len(tuners["runs"]) == budget.folds * budget.seeds
    for run in tuners["runs"]:
        assert set(run["tuners"]) == TUNERS
        for name in ("bayes", "tpe", "random"):
            assert run["tuners"][name]["evaluations"] == budget.evaluations
        # Grid search evaluates the largest grid whose size fits the budget.
        assert 1 <= run["tuners"]["grid"]["evaluations"] <= budget.evaluations
        # The DQN scores at least as many users as the searches' evaluations do.
        assert run["tuners"]["dqn"]["evaluations"] >= budget.evaluations
        for result in run["tuners"].values():
            assert len(result["ctr_per_day"]) == budget.days
            assert 0.0 <= result["metrics"]["ndcg"] <= 1.0
    for name in BASELINES:
        interval = tuners["summary"]["paired"][name]["ndcg"]
        assert interval["n"] == budget.folds * budget.seeds
        assert interval["low"] <= interval["mean"] <= interval["high"]


@pytest.mark.slow
def test_harness_writes_captioned_figures(tiny_run):
    output, _ = tiny_run
    results_dir = output / "benchmarks" / "results"

    for name in ("quality_ndcg", "tuners_ctr_per_day", "tuners_paired"):
        path = results_dir / f"{name}.png"
        assert path.read_bytes()[:8] == PNG_MAGIC, name
        assert (
            f"benchmarks/results/{name}.png" in (output / "BENCHMARKS.md").read_text()
        )


@pytest.mark.slow
def test_harness_recbole_ran_or_skip_reason(tiny_run):
    output, _ = tiny_run
    page = (output / "BENCHMARKS.md").read_text()
    quality = json.loads((output / "benchmarks/results/quality.json").read_text())

    if not recbole_available():
        assert "RecBole skipped:" in page
        assert str(recbole_venv()) in page
        assert RECBOLE_SETUP in page
        assert "| quality | partial: RecBole skipped" in page
        return
    assert quality["recbole_skipped"] is None
    assert "| RecBole EASE |" in page
    assert "| RecBole Pop |" in page
    # Same training file, same lambda, same masking: the metric definitions agree.
    for metric in ("ndcg", "recall", "precision"):
        check = quality["summary"]["check"]["EASE"]["metrics"][metric]
        assert check["max_abs_difference"] < 1e-3, metric


def test_parts_parse_in_run_order():
    assert parse_parts("serving, quality") == ["quality", "serving"]


def test_unknown_part_rejected():
    with pytest.raises(UsageError, match=r"unknown parts \['speed'\]"):
        parse_parts("quality,speed")


def test_missing_recbole_venv_names_fix(tmp_path):
    missing = tmp_path / "no-venv"

    with pytest.raises(RecBoleUnavailable) as raised:
        RecBoleRunner.find(missing, SOURCE_ROOT, RECBOLE_SETUP)

    assert str(missing) in str(raised.value)
    assert RECBOLE_SETUP in str(raised.value)


def test_render_only_needs_earlier_run(tmp_path):
    with pytest.raises(UsageError, match="bench.json does not exist"):
        render_stored(tmp_path)


def test_recbole_venv_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ADAPTREC_RECBOLE_VENV", str(tmp_path / "venv"))

    assert recbole_venv() == tmp_path / "venv"
    assert recbole_venv(str(tmp_path / "other")) == tmp_path / "other"


@pytest.mark.slow
def test_export_writes_recbole_benchmark_files(tmp_path):
    from adaptrec.data import kfold_split, load_dataset, validation_split

    dataset = load_dataset("ml-100k")
    fold = kfold_split(dataset, n_folds=5, seed=0)[1]

    export_folds(dataset, [fold], tmp_path)

    folder = tmp_path / "fold1" / "ml-100k"
    pairs = {}
    for split in ("train", "valid", "test"):
        lines = (folder / f"ml-100k.{split}.inter").read_text().splitlines()
        assert lines[0] == "user_id:token\titem_id:token"
        pairs[split] = {tuple(line.split("\t")) for line in lines[1:]}
    fit, valid = validation_split(fold.train, 0.2, seed=1)
    assert len(pairs["train"]) == fit.nnz
    assert len(pairs["valid"]) == valid.nnz
    assert len(pairs["test"]) == fold.test.nnz
    assert not pairs["train"] & pairs["test"]
    assert not pairs["valid"] & pairs["test"]
    items = {item for split in pairs.values() for _, item in split}
    links = (folder / "ml-100k.link").read_text().splitlines()[1:]
    assert links
    assert {line.split("\t")[0] for line in links} <= items
    kg_lines = (folder / "ml-100k.kg").read_text().splitlines()
    assert kg_lines[0] == "head_id:token\trelation_id:token\ttail_id:token"
    assert len(kg_lines) - 1 == len(dataset.kg)


def test_paired_interval_matches_t_table():
    interval = paired_t_interval([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])

    # Differences 1, 2, 3: mean 2, sd 1, t(0.975, 2 df) = 4.3027.
    half_width = 4.302653 / math.sqrt(3)
    assert interval["mean"] == pytest.approx(2.0)
    assert interval["low"] == pytest.approx(2.0 - half_width, rel=1e-5)
    assert interval["high"] == pytest.approx(2.0 + half_width, rel=1e-5)
    assert interval["n"] == 3


def test_paired_interval_single_pair_has_no_bounds():
    interval = paired_t_interval([0.3], [0.1])

    assert interval["mean"] == pytest.approx(0.2)
    assert interval["low"] is None
    assert interval["high"] is None


def test_paired_interval_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="equal, non-empty lengths"):
        paired_t_interval([1.0, 2.0], [1.0])


def test_dqn_episodes_score_same_users():
    budget = budget_for("standard")

    episodes = dqn_episodes(budget, n_validation_users=942)

    users_per_episode = budget.users_per_step * budget.episode_length
    assert episodes * users_per_episode >= budget.evaluations * 942
    assert (episodes - 1) * users_per_episode < budget.evaluations * 942


def _write_script(root: Path, body: str) -> None:
    script = root / "benchmarks" / "fake.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(body)


FAKE_SCRIPT = """
import json, sys
from pathlib import Path
out = Path(__file__).parent / "results"
out.mkdir(exist_ok=True)
(out / "fake.json").write_text(json.dumps({"value": len(sys.argv)}))
(out / "fake.md").write_text("# fake")
"""


def _fake_part(check=lambda root: None) -> SpeedPart:
    return SpeedPart("fake", "benchmarks/fake.py", "fake", None, check, 60)


def test_speed_part_restores_checkout_results(tmp_path):
    root, results, logs = tmp_path / "src", tmp_path / "out", tmp_path / "logs"
    results.mkdir()
    logs.mkdir()
    _write_script(root, FAKE_SCRIPT)
    checkout_results = root / "benchmarks" / "results"
    checkout_results.mkdir()
    (checkout_results / "fake.json").write_text('{"value": "hand-run"}')

    document = run_speed_part(_fake_part(), root, results, ["--x", "1"], logs)

    assert document == {"value": 3}
    assert json.loads((results / "speed-fake.json").read_text()) == {"value": 3}
    assert (results / "speed-fake.md").read_text() == "# fake"
    assert (checkout_results / "fake.json").read_text() == '{"value": "hand-run"}'
    assert not (checkout_results / "fake.md").exists()


def test_speed_part_failure_shows_log_tail(tmp_path):
    root = tmp_path / "src"
    _write_script(root, "import sys\nprint('boom: no model')\nsys.exit(3)\n")

    with pytest.raises(RuntimeError, match="exited with code 3.*boom: no model"):
        run_speed_part(_fake_part(), root, tmp_path, [], tmp_path)


def test_speed_part_missing_script_skipped(tmp_path):
    with pytest.raises(PartSkipped, match="benchmarks/fake.py is not in"):
        run_speed_part(_fake_part(), tmp_path, tmp_path, [], tmp_path)


def test_speed_part_missing_prerequisite_skipped(tmp_path):
    _write_script(tmp_path, FAKE_SCRIPT)

    def no_server(root):
        raise PartSkipped("redis-server is not installed")

    with pytest.raises(PartSkipped, match="redis-server is not installed"):
        run_speed_part(_fake_part(no_server), tmp_path, tmp_path, [], tmp_path)


def test_page_shows_skip_reason():
    index = {
        "command": "adaptrec bench",
        "date": "2026-01-01T00:00:00+00:00",
        "budget": "tiny",
        "wall_s": 1.0,
        "machine": {
            "cores": 2,
            "cpu": "test CPU",
            "memory_gib": 1.0,
            "gpu": None,
            "load_average_1m": 0.5,
        },
        "parts": {
            name: {"status": "skipped", "reason": f"{name} needs X; run Y"}
            for name in PARTS
        },
    }

    page = render_page(index, {})

    for name in PARTS:
        assert f"| {name} | skipped: {name} needs X |" in page
        assert f"Skipped: {name} needs X; run Y" in page
    assert "No part produced data." in page


def test_budget_levels_grow():
    tiny, standard, full = (budget_for(n) for n in ("tiny", "standard", "full"))

    assert tiny.evaluations < standard.evaluations < full.evaluations
    assert tiny.folds <= standard.folds <= full.folds == 5
    assert np.all([b.seeds >= 2 for b in (tiny, standard, full)])


def test_unknown_budget_rejected():
    with pytest.raises(ValueError, match="unknown budget 'huge'"):
        budget_for("huge")
