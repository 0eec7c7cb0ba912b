"""``adaptrec bench``: regenerate BENCHMARKS.md and its figures by running each part.

Parts:

- ``quality``: the hybrid recommender after each tuner against RecBole's Pop,
  ItemKNN, BPR, EASE, LightGCN and CKE on identical folds, plus a check that both
  libraries compute the same metrics (:mod:`adaptrec.bench.recbole`);
- ``tuners``: DQN, GP Bayesian optimisation, grid search, TPE and random search at
  an equal budget, on test NDCG@10 and on simulated CTR under drift, with paired
  intervals (:mod:`adaptrec.bench.hybrid`);
- ``throughput``, ``features``, ``serving``, ``operator``: the component benchmark
  scripts under ``benchmarks/`` (:mod:`adaptrec.bench.speed`).

``quality`` and ``tuners`` share one set of hybrid runs. RecBole trains in its own
process while they run. Results go to ``<output>/benchmarks/results/*.json``, the
page to ``<output>/BENCHMARKS.md``; a part that is not selected keeps its stored
result, marked as reused.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from adaptrec.bench import analysis, plots
from adaptrec.bench.budgets import BUDGET_NAMES, Budget, budget_for
from adaptrec.bench.environment import (
    RECBOLE_SETUP,
    SOURCE_ROOT,
    describe_machine,
    invoked_command,
    recbole_venv,
    utc_now,
)
from adaptrec.bench.recbole import (
    RECBOLE_MODELS,
    RecBoleProcess,
    RecBoleRunner,
    RecBoleUnavailable,
    export_folds,
    reference_metrics,
)
from adaptrec.bench.render import RESULTS, load_results, render_page
from adaptrec.bench.speed import (
    SPEED_PARTS,
    PartSkipped,
    run_speed_part,
    throughput_devices,
)

log = logging.getLogger(__name__)

PARTS = ("quality", "tuners", "throughput", "features", "serving", "operator")
# Part states whose stored result the page shows.
SHOWN_STATES = ("ran", "partial", "reused")
# Maximum wait for RecBole after the hybrid runs finish, per budget.
RECBOLE_TIMEOUT_S = {"tiny": 900.0, "standard": 3600.0, "full": 7 * 24 * 3600.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``adaptrec bench``'s options."""
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated parts to run (default: all of {','.join(PARTS)})",
    )
    parser.add_argument(
        "--budget",
        choices=BUDGET_NAMES,
        default="standard",
        help="tiny (a couple of minutes, for tests), standard (about an hour on 2 "
        "CPU cores) or full (5 folds, RecBole's documented grids, many hours); "
        "default: standard",
    )
    parser.add_argument(
        "--output",
        default=".",
        help="folder for BENCHMARKS.md and benchmarks/results/ (default: the "
        "current folder)",
    )
    parser.add_argument(
        "--recbole-venv",
        default=None,
        metavar="PATH",
        help="RecBole's virtual environment (default: $ADAPTREC_RECBOLE_VENV, else "
        "${XDG_CACHE_HOME:-~/.cache}/adaptrec/recbole-venv; build it with "
        f"{RECBOLE_SETUP})",
    )
    parser.add_argument(
        "--recbole-models",
        nargs="+",
        default=list(RECBOLE_MODELS),
        metavar="MODEL",
        help=f"RecBole models to run (default: {' '.join(RECBOLE_MODELS)})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for every part (default 1: on a shared 2-core "
        "machine more threads contend and slow small models down)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: render BENCHMARKS.md again from the stored JSON results "
        "of the last run in --output",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="torch device for the hybrid runs (default: cuda when available)",
    )


def parse_parts(text: str) -> list[str]:
    """Return the parts named in a comma-separated list, in run order.

    Raises:
        UsageError: A name is not a part.
    """
    from adaptrec.cli import UsageError

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(PARTS))
    if unknown or not names:
        raise UsageError(
            f"--parts {text!r} names unknown parts {unknown}; choose from "
            f"{','.join(PARTS)}"
        )
    return [part for part in PARTS if part in names]


def _check_arguments(args: argparse.Namespace) -> torch.device:
    from adaptrec.cli import UsageError

    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    unknown = sorted(set(args.recbole_models) - set(RECBOLE_MODELS) - {"KGAT"})
    if unknown:
        raise UsageError(
            f"--recbole-models names unknown models {unknown}; choose from "
            f"{' '.join(RECBOLE_MODELS)} KGAT"
        )
    device_name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device_name)
    except RuntimeError:
        raise UsageError(
            f"--device {device_name!r} is not a torch device; use cpu or cuda"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was given but CUDA is not available")
    return device


class BenchRun:
    """One invocation: its settings, provenance and the status of every part."""

    def __init__(self, args: argparse.Namespace, parts: list[str]) -> None:
        self.args = args
        self.parts = parts
        self.budget: Budget = budget_for(args.budget)
        self.output = Path(args.output)
        self.results_dir = self.output / RESULTS
        self.logs_dir = self.results_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.started = time.perf_counter()
        self.provenance = {
            "date": utc_now(),
            "command": invoked_command(),
            "machine": describe_machine(),
            "budget": self.budget.name,
        }
        self.status: dict[str, dict[str, Any]] = {}

    def write_json(self, name: str, document: dict[str, Any]) -> None:
        path = self.results_dir / f"{name}.json"
        path.write_text(json.dumps({**self.provenance, **document}, indent=2) + "\n")
        log.info("wrote %s", path)

    def run_model_parts(self, device: torch.device) -> None:
        """Run ``quality`` and ``tuners`` on one shared set of hybrid runs."""
        from adaptrec.data import kfold_split, load_dataset

        started = time.perf_counter()
        dataset = load_dataset("ml-100k")
        folds = kfold_split(dataset, n_folds=5, seed=0)[: self.budget.folds]
        with tempfile.TemporaryDirectory(prefix="adaptrec-bench-") as scratch:
            recbole, recbole_skipped = None, None
            if "quality" in self.parts:
                recbole, recbole_skipped = self._start_recbole(
                    dataset, folds, Path(scratch)
                )
            try:
                self._run_hybrid_parts(
                    dataset, folds, device, recbole, recbole_skipped, started
                )
            finally:
                # Stops RecBole when a hybrid run failed or was interrupted.
                if recbole is not None:
                    recbole.stop()

    def _run_hybrid_parts(
        self,
        dataset: Any,
        folds: list,
        device: torch.device,
        recbole: RecBoleProcess | None,
        recbole_skipped: str | None,
        started: float,
    ) -> None:
        from adaptrec.bench.hybrid import run_hybrid

        hybrid = run_hybrid(dataset, folds, self.budget, device)
        hybrid_s = time.perf_counter() - started
        if "tuners" in self.parts:
            tuners = {
                "settings": hybrid["settings"],
                "hyperparameter_space": hybrid["hyperparameter_space"],
                "simulator": hybrid["simulator"],
                "fold_setup_s": hybrid["fold_setup_s"],
                "runs": hybrid["runs"],
                "summary": analysis.summarise_tuners(hybrid["runs"]),
            }
            self.write_json("tuners", tuners)
            plots.plot_ctr_per_day(
                {**self.provenance, **tuners},
                self.results_dir / "tuners_ctr_per_day.png",
            )
            plots.plot_paired_intervals(
                {**self.provenance, **tuners},
                self.results_dir / "tuners_paired.png",
            )
            self.status["tuners"] = {"status": "ran", "wall_s": hybrid_s}

        if "quality" in self.parts:
            self._finish_quality(
                dataset, folds, hybrid, recbole, recbole_skipped, started
            )

    def _start_recbole(
        self, dataset: Any, folds: list, scratch: Path
    ) -> tuple[RecBoleProcess | None, str | None]:
        try:
            runner = RecBoleRunner.find(
                recbole_venv(self.args.recbole_venv), SOURCE_ROOT, RECBOLE_SETUP
            )
        except RecBoleUnavailable as error:
            log.warning("RecBole skipped: %s", error)
            return None, str(error)
        data_dir = scratch / "recbole-folds"
        export_folds(dataset, folds, data_dir)
        process = runner.start(
            data_dir,
            scratch / "recbole.json",
            self.budget.recbole_budget,
            len(folds),
            self.args.recbole_models,
            self.args.threads,
            self.logs_dir / "recbole.log",
        )
        return process, None

    def _finish_quality(
        self,
        dataset: Any,
        folds: list,
        hybrid: dict[str, Any],
        recbole: RecBoleProcess | None,
        recbole_skipped: str | None,
        started: float,
    ) -> None:
        recbole_result = None
        if recbole is not None:
            log.info("waiting for RecBole to finish (log: %s)", recbole.log_path)
            try:
                recbole_result = recbole.wait(RECBOLE_TIMEOUT_S[self.budget.name])
            except RuntimeError as error:
                recbole_skipped = f"RecBole failed: {error}"
                log.error("%s", recbole_skipped)
        reference = reference_metrics(folds) if recbole_result else None
        quality = {
            "setup": {
                "dataset": dataset.name,
                "positive_threshold": dataset.positive_threshold,
                "folds": len(folds),
                "seeds": self.budget.seeds,
            },
            "recbole": recbole_result,
            "recbole_skipped": recbole_skipped,
            "reference": reference,
            "summary": analysis.summarise_quality(
                hybrid["runs"], recbole_result, reference
            ),
        }
        self.write_json("quality", quality)
        plots.plot_quality(
            {**self.provenance, **quality}, self.results_dir / "quality_ndcg.png"
        )
        status: dict[str, Any] = {
            "status": "ran",
            "wall_s": time.perf_counter() - started,
        }
        if recbole_skipped:
            status = {**status, "status": "partial", "reason": recbole_skipped}
        self.status["quality"] = status

    def run_speed_part(self, name: str) -> None:
        part = SPEED_PARTS[name]
        started = time.perf_counter()
        extra = list(self.budget.speed_args.get(name, []))
        try:
            if name == "throughput":
                for stale in self.results_dir.glob("speed-throughput-*.*"):
                    stale.unlink()
                for device in throughput_devices():
                    run_speed_part(
                        part,
                        SOURCE_ROOT,
                        self.results_dir,
                        [
                            *extra,
                            "--device",
                            device,
                            "--threads",
                            str(self.args.threads),
                        ],
                        self.logs_dir,
                        suffix=f"-{device}",
                    )
            else:
                run_speed_part(
                    part, SOURCE_ROOT, self.results_dir, extra, self.logs_dir
                )
        except PartSkipped as skipped:
            log.warning("%s skipped: %s", name, skipped)
            self.status[name] = {"status": "skipped", "reason": str(skipped)}
            return
        except RuntimeError as error:
            log.error("%s failed: %s", name, error)
            self.status[name] = {"status": "failed", "reason": str(error)}
            return
        self.status[name] = {"status": "ran", "wall_s": time.perf_counter() - started}

    def finish(self) -> Path:
        """Record the unselected parts, write bench.json and render the page."""
        stored = load_results(self.results_dir, list(PARTS))
        parts: dict[str, dict[str, Any]] = {}
        for name in PARTS:
            if name in self.status:
                parts[name] = self.status[name]
            elif name in stored:
                parts[name] = {"status": "reused"}
            else:
                parts[name] = {"status": "not run"}
        index = {
            **self.provenance,
            "parts": parts,
            "wall_s": time.perf_counter() - self.started,
        }
        (self.results_dir / "bench.json").write_text(json.dumps(index, indent=2) + "\n")
        shown = {
            name: result
            for name, result in stored.items()
            if parts[name]["status"] in SHOWN_STATES
        }
        page = self.output / "BENCHMARKS.md"
        page.write_text(render_page(index, shown))
        log.info("wrote %s", page)
        return page


def render_stored(output: Path) -> Path:
    """Render ``output/BENCHMARKS.md`` from the stored results of the last run.

    Raises:
        UsageError: ``output`` contains no ``bench.json`` of an earlier run.
    """
    from adaptrec.cli import UsageError

    results_dir = output / RESULTS
    index_path = results_dir / "bench.json"
    if not index_path.is_file():
        raise UsageError(
            f"--render-only needs the results of an earlier run, but {index_path} "
            "does not exist; run adaptrec bench without --render-only first"
        )
    index = json.loads(index_path.read_text())
    stored = load_results(results_dir, list(PARTS))
    shown = {
        name: result
        for name, result in stored.items()
        if index["parts"].get(name, {}).get("status") in SHOWN_STATES
    }
    page = output / "BENCHMARKS.md"
    page.write_text(render_page(index, shown))
    return page


def run(args: argparse.Namespace) -> int:
    """Run the selected parts and regenerate BENCHMARKS.md; 1 when a part failed."""
    if args.render_only:
        page = render_stored(Path(args.output))
        print(f"benchmarks rendered to {page}")
        return 0
    parts = parse_parts(args.parts)
    device = _check_arguments(args)
    torch.set_num_threads(args.threads)
    bench = BenchRun(args, parts)
    log.info("adaptrec bench: parts %s at budget %s", ",".join(parts), args.budget)

    if "quality" in parts or "tuners" in parts:
        bench.run_model_parts(device)
    for name in parts:
        if name in SPEED_PARTS:
            bench.run_speed_part(name)

    page = bench.finish()
    print(f"benchmarks written to {page}")
    failed = [
        name for name, status in bench.status.items() if status["status"] == "failed"
    ]
    return 1 if failed else 0
