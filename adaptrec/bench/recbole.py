"""RecBole on adaptrec's own folds: export them, run RecBole in its own virtual
environment, and check that both compute the same metrics.

The export writes, per fold, RecBole benchmark files (``benchmark_filename``
``["train", "valid", "test"]``). ``train`` is the training fold minus the validation
split that adaptrec's tuners use (``validation_split(fold.train, 0.2,
seed=fold.index)``), ``valid`` is that split and ``test`` is the test fold. Both
libraries therefore train, validate and test on the same user-item pairs. The
knowledge graph goes along as ``ml-100k.kg`` and ``ml-100k.link``.

The metric check fits adaptrec's reference EASE and popularity ranking on the same
``train`` file and scores them with adaptrec's own metrics on the test fold, with
every training and validation item masked, as RecBole does. Any difference from
RecBole's numbers for the same model and setting is then a difference in how the
metrics are computed, not in the data.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from adaptrec.data import Dataset, Fold, validation_split
from adaptrec.evaluation.baselines import ease_score_fn, popularity_score_fn
from adaptrec.evaluation.metrics import evaluate_scores

log = logging.getLogger(__name__)

RECBOLE_DATASET = "ml-100k"
RECBOLE_MODELS = ("Pop", "ItemKNN", "BPR", "EASE", "LightGCN", "CKE")
# RecBole's default EASE reg_weight, in its documented grid at every budget.
CHECK_EASE_LAMBDA = 250.0
METRIC_KEYS = {"ndcg": "ndcg@10", "recall": "recall@10", "precision": "precision@10"}


class RecBoleUnavailable(Exception):
    """RecBole's environment or driver script is missing; the message names which."""


@dataclass
class RecBoleRunner:
    """RecBole's interpreter and driver script, checked before any fold is written."""

    python: Path
    script: Path

    @classmethod
    def find(cls, venv: Path, source_root: Path, setup_hint: str) -> RecBoleRunner:
        """Return a runner for ``venv``, or raise :class:`RecBoleUnavailable`."""
        script = source_root / "benchmarks" / "recbole" / "run_recbole.py"
        if not script.is_file():
            raise RecBoleUnavailable(
                f"the RecBole driver {script} is missing; run adaptrec bench from a "
                "source checkout"
            )
        python = venv / "bin" / "python"
        if not python.is_file():
            raise RecBoleUnavailable(
                f"RecBole's virtual environment {venv} does not exist; create it "
                f"with {setup_hint}"
            )
        probe = subprocess.run(
            [str(python), "-c", "import recbole; print(recbole.__version__)"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if probe.returncode != 0:
            last_line = (probe.stderr.strip().splitlines() or ["no output"])[-1]
            raise RecBoleUnavailable(
                f"{python} cannot import recbole ({last_line}); rebuild the "
                f"environment with {setup_hint}"
            )
        return cls(python=python, script=script)

    def start(
        self,
        data_dir: Path,
        output: Path,
        budget: str,
        folds: int,
        models: list[str],
        threads: int,
        log_path: Path,
    ) -> RecBoleProcess:
        """Start the driver in the background; its log goes to ``log_path``."""
        command = [
            str(self.python),
            str(self.script),
            "--data",
            str(data_dir),
            "--output",
            str(output),
            "--budget",
            budget,
            "--folds",
            *[str(index) for index in range(folds)],
            "--models",
            *models,
            "--threads",
            str(threads),
        ]
        log.info("starting RecBole: %s", " ".join(command))
        # RecBole writes log_tensorboard/ into its working directory.
        with log_path.open("w") as log_file:
            process = subprocess.Popen(
                command,
                cwd=data_dir,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return RecBoleProcess(process, output, log_path, time.perf_counter())


@dataclass
class RecBoleProcess:
    """A running RecBole driver."""

    process: subprocess.Popen
    output: Path
    log_path: Path
    started: float

    def wait(self, timeout_s: float) -> dict[str, Any]:
        """Wait for the driver and return its JSON, with its wall time added.

        Raises:
            RuntimeError: The driver failed or ran past ``timeout_s``; the message
                contains the end of its log.
        """
        try:
            returncode = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(timeout=30)
            raise RuntimeError(
                f"RecBole timed out after {timeout_s:.0f} s and was stopped; "
                f"log tail: {self.log_tail()}"
            ) from None
        if returncode != 0 or not self.output.is_file():
            raise RuntimeError(
                f"RecBole exited with code {returncode}; log tail: {self.log_tail()}"
            )
        document = json.loads(self.output.read_text())
        document["wall_s"] = round(time.perf_counter() - self.started, 1)
        return document

    def stop(self) -> None:
        """Stop the driver if it is still running."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def log_tail(self, lines: int = 8) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace")
        return " | ".join(text.strip().splitlines()[-lines:])


def _write_atomic_file(path: Path, header: list[str], rows: Any) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("\t".join(header) + "\n")
        for row in rows:
            handle.write("\t".join(row) + "\n")


def _pairs(dataset: Dataset, matrix: sp.csr_matrix) -> Any:
    coo = matrix.tocoo()
    return zip(dataset.user_ids[coo.row], dataset.item_ids[coo.col], strict=True)


def export_folds(dataset: Dataset, folds: list[Fold], folder: Path) -> list[Path]:
    """Write each fold as RecBole benchmark files under ``folder/fold<i>/ml-100k/``.

    Only items with at least one positive are linked to the graph, because RecBole
    1.2.1 fails on a linked item that no interaction file mentions.

    Returns:
        The fold folders, in fold order.
    """
    items_with_positives = set(np.flatnonzero(dataset.positives().getnnz(axis=0)))
    links = [
        (str(dataset.item_ids[item]), str(entity))
        for item, entity in sorted(dataset.item_entities.items())
        if item in items_with_positives
    ]
    written = []
    for fold in folds:
        target = folder / f"fold{fold.index}" / RECBOLE_DATASET
        target.mkdir(parents=True, exist_ok=True)
        fit, valid = validation_split(fold.train, 0.2, seed=fold.index)
        header = ["user_id:token", "item_id:token"]
        for split, matrix in (("train", fit), ("valid", valid), ("test", fold.test)):
            path = target / f"{RECBOLE_DATASET}.{split}.inter"
            _write_atomic_file(path, header, _pairs(dataset, matrix))
        if dataset.kg is not None:
            triples = dataset.kg[["head", "relation", "tail"]].astype(str)
            _write_atomic_file(
                target / f"{RECBOLE_DATASET}.kg",
                ["head_id:token", "relation_id:token", "tail_id:token"],
                triples.itertuples(index=False),
            )
            _write_atomic_file(
                target / f"{RECBOLE_DATASET}.link",
                ["item_id:token", "entity_id:token"],
                links,
            )
        written.append(target.parent)
    log.info("exported %d folds as RecBole benchmark files to %s", len(folds), folder)
    return written


def reference_metrics(folds: list[Fold]) -> dict[str, list[dict[str, float]]]:
    """Score adaptrec's EASE (lambda 250) and popularity ranking per fold, fitted
    on the exported ``train`` file and tested like RecBole tests."""
    results: dict[str, list[dict[str, float]]] = {"EASE": [], "Pop": []}
    for fold in folds:
        fit, _ = validation_split(fold.train, 0.2, seed=fold.index)
        score_fns = {
            "EASE": ease_score_fn(fit, l2=CHECK_EASE_LAMBDA),
            "Pop": popularity_score_fn(fit),
        }
        for name, score_fn in score_fns.items():
            metrics = evaluate_scores(score_fn, fold.train, fold.test, k=10)
            results[name].append(
                {key: float(metrics[metric]) for metric, key in METRIC_KEYS.items()}
            )
    return results


def recbole_point_metrics(
    recbole: Mapping[str, Any], model: str, params: Mapping[str, Any]
) -> list[dict[str, float]] | None:
    """Return RecBole's test metrics per fold for ``model`` at grid point ``params``,
    or None when that point was not run."""
    entry = recbole.get("models", {}).get(model, {})
    per_fold = []
    for fold in entry.get("folds", []):
        match = [t for t in fold["trials"] if t["params"] == params]
        if not match:
            return None
        per_fold.append(match[0]["test"])
    return per_fold or None
