"""``adaptrec run`` end to end on MovieLens-100K with tiny budgets."""

import json
import re

import pytest

from adaptrec.cli import main

# Two values each for beta and gamma keep component training to a few seconds.
SMALL_SPACE = """\
hyperparameters:
  - {name: alpha, min: 0.0, max: 1.0, step: 0.25, initial: 0.5}
  - {name: w_content, min: 0.0, max: 1.0, step: 0.25, initial: 0.25}
  - {name: w_kg, min: 0.0, max: 1.0, step: 0.25, initial: 0.25}
  - {name: w_topic, min: 0.0, max: 1.0, step: 0.25, initial: 0.25}
  - {name: beta, min: 0.003, max: 0.005, step: 0.002, initial: 0.003}
  - {name: gamma, min: 150.0, max: 250.0, step: 100.0, initial: 250.0}
"""


def run_tiny(tmp_path, name):
    space = tmp_path / "space.yaml"
    space.write_text(SMALL_SPACE)
    output = tmp_path / name
    code = main(
        [
            "-q",
            "run",
            "--hyperparams", str(space),
            "--folds", "1",
            "--episodes", "3",
            "--budget", "3",
            "--days", "2",
            "--users-per-day", "64",
            "--output", str(output),
        ]
    )  # fmt: skip
    assert code == 0
    return output


@pytest.mark.slow
def test_run_writes_reproducible_report(tmp_path):
    first = run_tiny(tmp_path, "first")

    for name in ("report.md", "metrics.json", "dqn_reward.png", "ctr_per_day.png"):
        assert (first / name).stat().st_size > 0, name
    results = json.loads((first / "metrics.json").read_text())
    summary = results["summary"]
    assert set(summary) == {"initial", "grid", "bayes", "dqn", "dqn_online"}

    # Every number in the table comes from metrics.json.
    report = (first / "report.md").read_text()
    ndcg_row = next(line for line in report.splitlines() if line.startswith("| NDCG"))
    cells = re.findall(r"\d+\.\d{4}", ndcg_row)
    expected = [f"{summary[t]['ndcg']['mean']:.4f}" for t in summary]
    assert cells == expected
    for tuner, entry in summary.items():
        assert 0.0 < entry["ndcg"]["mean"] < 1.0, tuner
        assert 0.0 <= entry["ctr"]["mean"] <= 1.0, tuner
        assert len(entry["ctr_per_day"]) == 2, tuner

    # The chosen sets lie within the declared bounds.
    bounds = {h["name"]: (h["min"], h["max"]) for h in results["hyperparameter_space"]}
    for path in (first / "hyperparams").glob("*.json"):
        chosen = json.loads(path.read_text())
        for name, value in chosen["values"].items():
            low, high = bounds[name]
            assert low <= value <= high, (path.name, name, value)

    # The budgets are the ones requested.
    fold = results["folds"][0]
    assert fold["tuners"]["grid"]["budget"]["evaluations"] == 3
    assert fold["tuners"]["bayes"]["budget"]["evaluations"] == 3
    assert fold["dqn_history"]["steps"] == 3 * results["config"]["episode_length"]

    # The same seed gives the same table.
    second = run_tiny(tmp_path, "second")
    repeated = json.loads((second / "metrics.json").read_text())["summary"]
    for tuner in summary:
        for metric in ("precision", "recall", "ndcg", "ctr"):
            assert repeated[tuner][metric]["mean"] == summary[tuner][metric]["mean"], (
                tuner,
                metric,
            )


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["--folds", "0"], "--folds must be at least 1, got 0"),
        (["--folds", "6"], "--folds must be at most 5, got 6"),
        (["--episodes", "-3"], "--episodes must be at least 1"),
        (["-k", "0"], "-k must be at least 1"),
        (["--device", "tpu9"], "--device 'tpu9' is not a torch device"),
        (["--hyperparams", "/nonexistent.yaml"], "/nonexistent.yaml not found"),
        (["--dataset", "/nonexistent-folder"], "/nonexistent-folder not found"),
    ],
)
def test_run_rejects_bad_options(capsys, arguments, fragment):
    with pytest.raises(SystemExit) as raised:
        main(["-q", "run", *arguments])
    assert raised.value.code == 2
    error = capsys.readouterr().err
    assert fragment in error
    assert "Traceback" not in error
