"""``adaptrec features``: build and materialise the Feast feature repository."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from adaptrec.features.errors import FeatureStoreError
from adaptrec.features.store import DEFAULT_REDIS_URL, ONLINE_STORES

log = logging.getLogger(__name__)

DEFAULT_REPO = Path("feature_repo")


def parse_end_date(text: str) -> datetime:
    """Parse an ISO 8601 date or date-time; a value without a zone is UTC.

    Raises:
        FeatureStoreError: ``text`` is not an ISO 8601 date or date-time.
    """
    try:
        value = datetime.fromisoformat(text)
    except ValueError as error:
        raise FeatureStoreError(
            f"invalid end date {text!r}: use an ISO 8601 date or date-time such as "
            "1998-04-23 or 1998-04-23T12:00:00Z"
        ) from error
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``features`` subcommands to ``parser``."""
    actions = parser.add_subparsers(dest="features_action", metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="compute the features, write the parquet sources, apply the "
        "definitions and materialise them into the online store",
        description="Compute user profiles, item features and the content "
        "landscape from the ratings and the models, write them as parquet files "
        "in the repository's data/ folder, apply the Feast definitions and "
        "materialise them into the online store. Safe to re-run.",
    )
    build.add_argument(
        "--repo",
        type=Path,
        default=DEFAULT_REPO,
        help="feature repository folder, the one with feature_store.yaml "
        "(default: %(default)s)",
    )
    build.add_argument(
        "--dataset",
        default="ml-100k",
        help="dataset to compute features from: ml-100k (downloaded once) or a "
        "local folder of ratings (default: %(default)s)",
    )
    build.add_argument(
        "--preset",
        choices=("quick", "full"),
        default="quick",
        help="model budgets for the NVDM and Node2Vec: quick (minutes on "
        "MovieLens-100K) or full (default: %(default)s)",
    )
    build.add_argument(
        "--online-store",
        choices=ONLINE_STORES,
        default="sqlite",
        help="online store to materialise into: sqlite (a file in data/, no "
        "server) or redis (default: %(default)s)",
    )
    build.add_argument(
        "--redis-url",
        default=None,
        help="Redis server for --online-store redis, as host:port[,db=N] or "
        f"redis://host:port/db (default: the repository's "
        f"feature_store.redis.yaml, {DEFAULT_REDIS_URL})",
    )
    build.add_argument(
        "--end-date",
        type=str,
        default=None,
        help="materialise events up to this ISO 8601 date or date-time, UTC when "
        "no zone is given; must not be in the future (default: the latest event "
        "in the data)",
    )


def _build(args: argparse.Namespace) -> int:
    from adaptrec.data import load_dataset
    from adaptrec.features.build import build_features, check_end_date
    from adaptrec.features.inputs import inputs_from_models
    from adaptrec.models import ModelConfig

    # Reject bad options before the dataset is loaded and the models are fitted.
    end_date = parse_end_date(args.end_date) if args.end_date else None
    check_end_date(end_date, datetime.now(UTC))
    if args.redis_url and args.online_store != "redis":
        raise FeatureStoreError(
            "--redis-url needs --online-store redis: add it or drop --redis-url"
        )
    dataset = load_dataset(args.dataset)
    config = ModelConfig.quick() if args.preset == "quick" else ModelConfig()
    summary = build_features(
        args.repo,
        dataset,
        lambda: inputs_from_models(dataset, config),
        online_store=args.online_store,
        redis_url=args.redis_url,
        end_date=end_date,
    )
    print(
        f"Built {args.repo} from {dataset.name} into the {summary.online_store} "
        f"online store, materialised up to {summary.end_date.isoformat()}"
    )
    for line in summary.lines():
        print(f"  {line}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the ``features`` subcommand chosen in ``args``; return the exit code."""
    # Feast logs every registry refresh at INFO.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("feast").setLevel(logging.WARNING)
    if args.features_action != "build":
        print("adaptrec features: error: choose an action: build", file=sys.stderr)
        return 2
    try:
        return _build(args)
    except FeatureStoreError as error:
        print(f"adaptrec features: error: {error}", file=sys.stderr)
        return 2
