"""Train RecBole models on adaptrec's exported folds and write their metrics as JSON.

This script runs with the Python of RecBole's own virtual environment (built from
``requirements.txt`` beside it), never with adaptrec's, so RecBole 1.2.1 and the old
NumPy it needs stay out of adaptrec's dependencies. ``adaptrec bench`` exports the
folds, starts this script and reads its JSON; it imports nothing from adaptrec.

Each fold folder contains RecBole benchmark files, ``ml-100k.train.inter``,
``ml-100k.valid.inter`` and ``ml-100k.test.inter``, plus ``ml-100k.kg`` and
``ml-100k.link`` for the knowledge-graph model. For every model, fold and point of
the model's hyperparameter grid, the script trains on ``train`` with early stopping
on validation NDCG@10, then ranks the full catalogue for the ``test`` users with
every training and validation item masked. The point with the best validation
NDCG@10 is the model's result on that fold.

Usage::

    $VENV/bin/python benchmarks/recbole/run_recbole.py --data DIR --output FILE \
        [--budget tiny|standard|full] [--models Pop EASE ...] [--folds 0 1 ...]

Run it from a scratch folder: RecBole writes ``log_tensorboard/`` into the working
directory.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

# RecBole 1.2.1 reloads its own checkpoint (a pickled dict with its Config object)
# with a bare torch.load, which torch >= 2.6 rejects unless weights-only loading is
# switched off. The checkpoint is one this script has just written.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import torch  # noqa: E402
from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.utils import get_model, get_trainer, init_seed  # noqa: E402

log = logging.getLogger("run_recbole")

DATASET = "ml-100k"
MODELS = ("Pop", "ItemKNN", "BPR", "EASE", "LightGCN", "CKE")
KG_MODELS = frozenset({"CKE", "KGAT"})
METRICS = ("ndcg@10", "recall@10", "precision@10")

# Hyperparameter ranges from each model's page in RecBole's documentation
# (docs/source/user_guide/model/*/<model>.rst, "hyper.test").
DOCUMENTED_GRIDS: dict[str, dict[str, list[Any]]] = {
    "Pop": {},
    "ItemKNN": {
        "k": [10, 50, 100, 200, 250, 300, 400, 500, 1000, 1500, 2000, 2500],
        "shrink": [0.0, 1.0],
    },
    "BPR": {"learning_rate": [0.01, 0.005, 0.001, 0.0005, 0.0001]},
    "EASE": {"reg_weight": [1.0, 10.0, 100.0, 250.0, 500.0, 1000.0]},
    "LightGCN": {
        "learning_rate": [0.01, 0.005, 0.001, 0.0005, 0.0001],
        "n_layers": [1, 2, 3, 4],
        "reg_weight": [1e-05, 1e-04, 1e-03, 1e-02],
    },
    "CKE": {
        "learning_rate": [0.01, 0.005, 0.001, 0.0005, 0.0001],
        "kg_embedding_size": [16, 32, 64, 128],
        "reg_weights": [[0.1, 0.1], [0.01, 0.01], [0.001, 0.001]],
    },
    "KGAT": {
        "learning_rate": [0.01, 0.005, 0.001, 0.0005, 0.0001],
        "layers": [[64, 32, 16], [64, 64, 64], [128, 64, 32]],
        "reg_weight": [1e-4, 5e-5, 1e-5, 5e-6, 1e-6],
        "mess_dropout": [0.1, 0.2, 0.3, 0.4, 0.5],
    },
}

# Small subsets of the documented ranges. EASE keeps reg_weight 250 at every
# budget, because adaptrec checks its own EASE against RecBole's at that value.
STANDARD_GRIDS: dict[str, dict[str, list[Any]]] = {
    "Pop": {},
    "ItemKNN": {"k": [50, 100, 250, 500], "shrink": [0.0, 1.0]},
    "BPR": {"learning_rate": [0.005, 0.001]},
    "EASE": {"reg_weight": [100.0, 250.0, 500.0, 1000.0]},
    "LightGCN": {"learning_rate": [0.005], "n_layers": [2, 3], "reg_weight": [1e-04]},
    # One point: a CKE epoch took about 6 s on one core of a loaded 2-core
    # machine, ten times a BPR epoch.
    "CKE": {
        "learning_rate": [0.005],
        "kg_embedding_size": [64],
        "reg_weights": [[0.1, 0.1]],
    },
    "KGAT": {
        "learning_rate": [0.001],
        "layers": [[64, 32, 16]],
        "reg_weight": [1e-5],
        "mess_dropout": [0.1],
    },
}
TINY_GRIDS: dict[str, dict[str, list[Any]]] = {
    "Pop": {},
    "ItemKNN": {"k": [100], "shrink": [0.0]},
    "BPR": {"learning_rate": [0.001]},
    "EASE": {"reg_weight": [250.0]},
    "LightGCN": {"learning_rate": [0.001], "n_layers": [2], "reg_weight": [1e-04]},
    "CKE": {
        "learning_rate": [0.001],
        "kg_embedding_size": [64],
        "reg_weights": [[0.1, 0.1]],
    },
    "KGAT": STANDARD_GRIDS["KGAT"],
}

# Per budget: the grids, the epoch cap and the early-stopping patience in epochs.
# RecBole's own defaults are 300 epochs with a patience of 10 (overall.yaml).
BUDGETS: dict[str, dict[str, Any]] = {
    "tiny": {"grids": TINY_GRIDS, "epochs": 1, "stopping_step": 1},
    "standard": {"grids": STANDARD_GRIDS, "epochs": 100, "stopping_step": 5},
    "full": {"grids": DOCUMENTED_GRIDS, "epochs": 300, "stopping_step": 10},
}


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Return every combination of a grid's values; one empty point for no grid."""
    names = list(grid)
    combinations = itertools.product(*grid.values())
    return [dict(zip(names, values, strict=True)) for values in combinations]


def base_config(model: str, fold_dir: Path, budget: dict[str, Any], seed: int) -> dict:
    """Return the config dict shared by every grid point of ``model`` on one fold."""
    load_col: dict[str, list[str]] = {"inter": ["user_id", "item_id"]}
    if model in KG_MODELS:
        load_col["kg"] = ["head_id", "relation_id", "tail_id"]
        load_col["link"] = ["item_id", "entity_id"]
    return {
        "data_path": str(fold_dir),
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": load_col,
        # The files are adaptrec's folds as they are: no filtering, no re-split.
        "user_inter_num_interval": None,
        "item_inter_num_interval": None,
        "val_interval": None,
        "eval_args": {"mode": "full", "order": "RO", "group_by": "user"},
        "metrics": ["NDCG", "Recall", "Precision"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "epochs": budget["epochs"],
        "stopping_step": budget["stopping_step"],
        "eval_step": 1,
        "seed": seed,
        "reproducibility": True,
        "use_gpu": torch.cuda.is_available(),
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "log_wandb": False,
    }


def prepare_fold(model: str, config_dict: dict, checkpoint_dir: Path) -> tuple:
    """Load one fold for ``model``; return its config and data loaders.

    The dataset and its loaders do not depend on the grid's hyperparameters, so
    every grid point of a model on a fold reuses them.
    """
    config = Config(
        model=model,
        dataset=DATASET,
        config_dict={**config_dict, "checkpoint_dir": str(checkpoint_dir)},
    )
    # Config points a dataset named ml-100k at RecBole's bundled copy and ignores
    # data_path, so the exported fold is set after construction.
    config["data_path"] = str(Path(config_dict["data_path"]) / DATASET)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    return config, dataset, train_data, valid_data, test_data


def run_point(config: Config, point: dict[str, Any], loaders: tuple) -> dict:
    """Train one grid point and return its validation and test metrics."""
    dataset, train_data, valid_data, test_data = loaders
    for name, value in point.items():
        config[name] = value
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    validations: list[float] = []
    started = time.perf_counter()
    _, best_valid = trainer.fit(
        train_data,
        valid_data,
        verbose=False,
        saved=True,
        callback_fn=lambda epoch, score: validations.append(float(score)),
    )
    fit_s = time.perf_counter() - started
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    return {
        "valid": {name: float(best_valid[name]) for name in METRICS},
        "test": {name: float(test[name]) for name in METRICS},
        "validations": len(validations),
        "fit_s": round(fit_s, 2),
        "n_users": int(dataset.user_num - 1),
        "n_items": int(dataset.item_num - 1),
    }


def run_model(
    model: str,
    fold_dirs: list[Path],
    budget_name: str,
    seed: int,
    scratch: Path,
) -> dict[str, Any]:
    """Search ``model``'s grid on every fold; return the chosen point per fold."""
    budget = BUDGETS[budget_name]
    grid = budget["grids"][model]
    points = grid_points(grid)
    folds = []
    for fold_dir in fold_dirs:
        config, *loaders = prepare_fold(
            model, base_config(model, fold_dir, budget, seed), scratch / "checkpoints"
        )
        trials = []
        for point in points:
            result = run_point(config, point, tuple(loaders))
            log.info(
                "%s on %s with %s: valid NDCG@10 %.4f, test NDCG@10 %.4f, %d "
                "validations in %.1f s",
                model,
                fold_dir.name,
                point or "its defaults",
                result["valid"]["ndcg@10"],
                result["test"]["ndcg@10"],
                result["validations"],
                result["fit_s"],
            )
            trials.append({"params": point, **result})
        best = max(trials, key=lambda trial: trial["valid"]["ndcg@10"])
        folds.append(
            {
                "fold": fold_dir.name,
                "params": best["params"],
                "valid": best["valid"],
                "test": best["test"],
                "trials": trials,
            }
        )
    return {"grid": grid, "points": len(points), "folds": folds}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="folder with one fold<N>/ml-100k/ subfolder per fold",
    )
    parser.add_argument("--output", type=Path, required=True, help="JSON to write")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="standard")
    parser.add_argument(
        "--models", nargs="+", default=list(MODELS), choices=sorted(DOCUMENTED_GRIDS)
    )
    parser.add_argument(
        "--folds", type=int, nargs="+", default=None, help="fold indices (all)"
    )
    parser.add_argument("--seed", type=int, default=0, help="RecBole's seed")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: on a shared, loaded 2-core machine "
        "two threads made BPR epochs about 3x slower in a measurement)",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # RecBole's Config also reads --key=value pairs from sys.argv.
    sys.argv = sys.argv[:1]
    torch.set_num_threads(args.threads)
    # RecBole 1.2.1 predates the torch and pandas releases it runs on here, which
    # warn about deprecated calls once per model.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    warnings.filterwarnings("ignore", category=UserWarning, module="recbole")
    # RecBole logs every epoch at INFO through the root logger, so only this
    # script's own logger reports progress.
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    log.setLevel(logging.INFO)

    fold_dirs = sorted(
        (path for path in args.data.glob("fold*") if path.is_dir()),
        key=lambda path: int(path.name.removeprefix("fold")),
    )
    if args.folds is not None:
        fold_dirs = [args.data / f"fold{index}" for index in args.folds]
    missing = [
        str(path)
        for path in fold_dirs
        if not (path / DATASET / f"{DATASET}.train.inter").is_file()
    ]
    if not fold_dirs or missing:
        sys.exit(
            f"run_recbole: exported fold files missing in {missing or args.data}; "
            "adaptrec bench writes them before it starts this script"
        )

    import recbole

    document: dict[str, Any] = {
        "recbole": recbole.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "budget": args.budget,
        "epochs": BUDGETS[args.budget]["epochs"],
        "stopping_step": BUDGETS[args.budget]["stopping_step"],
        "seed": args.seed,
        "threads": args.threads,
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="recbole-") as scratch:
        for model in args.models:
            started = time.perf_counter()
            try:
                result = run_model(
                    model, fold_dirs, args.budget, args.seed, Path(scratch)
                )
            except Exception as error:  # noqa: BLE001
                # One model's failure must not lose the others' results.
                log.error("%s failed: %s", model, error)
                result = {"error": f"{type(error).__name__}: {error}"}
                result["traceback"] = traceback.format_exc(limit=5)
            result["wall_s"] = round(time.perf_counter() - started, 1)
            document["models"][model] = result
            args.output.write_text(json.dumps(document, indent=2) + "\n")
    log.info("wrote %s", args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
