"""``adaptrec serve``: run the model server from the command line.

``adaptrec.cli`` calls :func:`add_arguments` on the ``serve`` subparser and
:func:`run` with the parsed arguments.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# KServe's convention: the storage initializer downloads artefacts here. Defined
# here rather than in .model so that building the CLI parser imports no kserve.
DEFAULT_MODEL_DIR = "/mnt/models"
DEFAULT_MODEL_NAME = "adaptrec"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options to ``parser``."""
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path(os.environ.get("ADAPTREC_MODEL_DIR", DEFAULT_MODEL_DIR)),
        help="directory with the artefacts of HybridRecommender.save (default: "
        "$ADAPTREC_MODEL_DIR or %(default)s, where KServe mounts model storage)",
    )
    parser.add_argument(
        "--rollout-file",
        type=Path,
        default=None,
        help="rollout JSON file with the stable and candidate hyperparameter sets; "
        "reloaded when it changes (default: serve the initial values of the "
        "hyperparameter space to every user)",
    )
    parser.add_argument(
        "--model-name",
        default=DEFAULT_MODEL_NAME,
        help="model name in the request paths, as in /v1/models/NAME:predict "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind; use 0.0.0.0 inside a container (default: %(default)s)",
    )
    parser.add_argument(
        "--http-port",
        type=_port,
        default=8080,
        help="HTTP port (default: %(default)s)",
    )
    parser.add_argument(
        "--default-k",
        type=_positive_int,
        default=10,
        help="slate length for requests that give no k (default: %(default)s)",
    )
    parser.add_argument(
        "--max-users",
        type=_positive_int,
        default=100,
        help="most users one predict request may name (default: %(default)s)",
    )
    parser.add_argument(
        "--max-events",
        type=_positive_int,
        default=1000,
        help="most click events one feedback request may carry (default: %(default)s)",
    )
    parser.add_argument(
        "--rollout-poll-seconds",
        type=_positive_float,
        default=2.0,
        help="seconds between checks of the rollout file (default: %(default)s)",
    )
    parser.add_argument(
        "--feedback-window-seconds",
        type=_positive_float,
        default=3600.0,
        help="seconds a version that left the rollout still accepts clicks "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="torch device for scoring; auto picks CUDA when available "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--score-cache-mb",
        type=float,
        default=256.0,
        help="memory budget in MiB for precomputed scores of every training user "
        "under each live hyperparameter set; 0 computes scores per request "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--torch-threads",
        type=_positive_int,
        default=1,
        help="threads torch may use within one scoring call (default: %(default)s, "
        "because a request scores a few users, where more threads cost more in "
        "synchronisation than they save; scale with replicas instead)",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per HTTP request (off by default: it costs throughput)",
    )


def run(args: argparse.Namespace) -> int:
    """Serve the model until SIGINT or SIGTERM; return the exit status."""
    from adaptrec.cli import UsageError

    # Paths are checked before torch and kserve load, which takes seconds.
    if not args.model_dir.is_dir():
        raise UsageError(
            f"--model-dir {args.model_dir} is not a directory; pass the directory "
            "that HybridRecommender.save wrote"
        )
    if args.rollout_file is not None and args.rollout_file.is_dir():
        raise UsageError(
            f"--rollout-file {args.rollout_file} is a directory; pass the JSON file "
            "inside it"
        )

    import torch

    from adaptrec.models import ArtifactError

    from .app import serve
    from .model import RecommenderModel

    torch.set_num_threads(args.torch_threads)
    device = None
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available; use cpu")
    if args.device != "auto":
        device = torch.device(args.device)

    model = RecommenderModel(
        args.model_name,
        args.model_dir,
        args.rollout_file,
        default_k=args.default_k,
        max_users=args.max_users,
        max_events=args.max_events,
        feedback_window_s=args.feedback_window_seconds,
        score_cache_mb=args.score_cache_mb,
        device=device,
    )
    try:
        serve(
            model,
            host=args.host,
            port=args.http_port,
            rollout_poll_s=args.rollout_poll_seconds,
            access_log=args.access_log,
        )
    except ArtifactError as error:
        raise UsageError(
            f"cannot load the model in --model-dir {args.model_dir}: {error}"
        ) from None
    return 0


def _port(text: str) -> int:
    value = _int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1..65535)")
    return value


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
