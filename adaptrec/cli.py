"""The ``adaptrec`` command line: one entry point for every component.

Only the invoked subcommand's module is imported, so ``adaptrec serve`` starts
without loading the tuners and ``adaptrec run`` without the Kubernetes client.
``adaptrec --help`` imports them all to list every option.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from adaptrec import __version__
from adaptrec.data.dataset import DataError
from adaptrec.hyperparams import HyperparamError
from adaptrec.rollout import RolloutError

log = logging.getLogger("adaptrec")


class UsageError(Exception):
    """A command-line value is invalid; the message names it and the fix."""


# Errors caused by the user's input: printed as one line, without a traceback.
_USER_ERRORS = (UsageError, DataError, HyperparamError, RolloutError)


def configure_logging(verbosity: int) -> None:
    """Set up the one logging configuration every subcommand uses."""
    level = logging.WARNING if verbosity < 0 else logging.INFO
    if verbosity > 0:
        level = logging.DEBUG
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # Optuna and numba log every trial or compilation at INFO; keep them quiet.
    for noisy in ("optuna", "numba", "gensim", "sentence_transformers", "httpx"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _add_run_parser(subparsers: argparse._SubParsersAction) -> None:
    from adaptrec.pipeline import add_run_arguments, run_from_args

    parser = subparsers.add_parser(
        "run",
        help="tune the hybrid recommender with DQN, grid search and Bayesian "
        "optimisation and write a report",
        description="Load the dataset, build the hybrid recommender, tune its "
        "hyperparameters with a DQN agent, grid search and Gaussian-process "
        "Bayesian optimisation, evaluate each with k-fold cross-validation and a "
        "simulated click-through test, and write report.md, plots and JSON.",
    )
    add_run_arguments(parser)
    parser.set_defaults(handler=run_from_args)


def _add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    from adaptrec.train import add_train_arguments, train_from_args

    parser = subparsers.add_parser(
        "train",
        help="run one DQN tuning round and report the chosen hyperparameter set "
        "(the operator's training Job command)",
    )
    add_train_arguments(parser)
    parser.set_defaults(handler=train_from_args)


def _add_serve_parser(subparsers: argparse._SubParsersAction) -> None:
    from adaptrec.model_server.cli import add_arguments, run

    parser = subparsers.add_parser(
        "serve", help="serve the hybrid recommender over the KServe protocols"
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def _add_features_parser(subparsers: argparse._SubParsersAction) -> None:
    from adaptrec.features.cli import add_arguments, run

    parser = subparsers.add_parser(
        "features", help="build and materialise the Feast feature repository"
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def _add_operator_parser(subparsers: argparse._SubParsersAction) -> None:
    from adaptrec.operator.cli import add_arguments, run

    parser = subparsers.add_parser(
        "operator", help="run the kopf operator that reconciles HyperparamPolicy"
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def _add_bench_parser(subparsers: argparse._SubParsersAction) -> None:
    from adaptrec.bench import add_arguments, run

    parser = subparsers.add_parser(
        "bench", help="regenerate BENCHMARKS.md and its plots"
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


_SUBCOMMANDS = {
    "run": _add_run_parser,
    "train": _add_train_parser,
    "serve": _add_serve_parser,
    "features": _add_features_parser,
    "operator": _add_operator_parser,
    "bench": _add_bench_parser,
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the parser; with ``command``, import only that subcommand's module."""
    parser = argparse.ArgumentParser(
        prog="adaptrec",
        description="Keep a hybrid recommender's hyperparameters tuned.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log debug messages"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="log warnings and errors only"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, add_parser in _SUBCOMMANDS.items():
        if command is not None and name != command:
            subparsers.add_parser(name, help=f"see adaptrec {name} --help")
            continue
        try:
            add_parser(subparsers)
        except ImportError as error:
            # A component whose optional dependencies are absent stays listed, with
            # the reason, instead of breaking every other subcommand.
            subparsers.add_parser(name, help=f"unavailable: {error}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in arguments if a in _SUBCOMMANDS), None)
    parser = build_parser(command)
    args = parser.parse_args(arguments)
    configure_logging(-1 if args.quiet else args.verbose)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except _USER_ERRORS as error:
        parser.exit(2, f"adaptrec {args.command}: error: {error}\n")
    except KeyboardInterrupt:
        log.warning("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    # Re-import by name so that ``python -m adaptrec.cli`` and the subcommands
    # share one module object, and one UsageError class.
    from adaptrec.cli import main as package_main

    sys.exit(package_main())
