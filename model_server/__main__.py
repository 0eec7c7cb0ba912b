"""``python -m adaptrec.model_server``: the model server without the other commands.

It takes the same options as ``adaptrec serve`` and starts sooner, because it
does not import the tuners, the operator or Feast, which ``adaptrec`` loads to
build its full command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from adaptrec.cli import UsageError, configure_logging
from adaptrec.data.dataset import DataError
from adaptrec.hyperparams import HyperparamError
from adaptrec.rollout import RolloutError

from .cli import add_arguments, run

# Errors caused by the user's input: printed as one line, without a traceback.
USER_ERRORS = (UsageError, DataError, HyperparamError, RolloutError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m adaptrec.model_server",
        description="Serve the hybrid recommender over the KServe v1 and v2 protocols.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log debug messages"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="log warnings and errors only"
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(-1 if args.quiet else args.verbose)
    try:
        return run(args)
    except USER_ERRORS as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
