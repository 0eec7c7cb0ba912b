"""Measure the hybrid recommender on one MovieLens-100K fold.

``python -m adaptrec.models.benchmark [--preset quick] [--fold 0]`` prints a JSON
report. It contains NDCG@10 of popularity, of each component alone and of the
space's initial set. It also contains the seconds taken to compute the item
embeddings, to fit the fold and to train the initial ``beta`` and ``gamma``, and
the users per second that ``score`` and ``recommend`` handle.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Mapping

import torch

from adaptrec.data.dataset import Fold
from adaptrec.models.hybrid import WEIGHT_NAMES, HybridRecommender

COMPONENT_WEIGHTS = {
    "cf": "alpha",
    "content": "w_content",
    "kg": "w_kg",
    "topic": "w_topic",
}


def single_component(values: Mapping[str, float], weight: str) -> dict[str, float]:
    """Return ``values`` with ``weight`` at 1 and every other score weight at 0."""
    result = dict(values)
    for name in WEIGHT_NAMES:
        if name in result:
            result[name] = 1.0 if name == weight else 0.0
    return result


def component_ndcg(
    model: HybridRecommender, fold: Fold, values: Mapping[str, float], k: int = 10
) -> dict[str, float]:
    """Return NDCG@k of each component alone and of ``values`` on ``fold.test``."""
    from adaptrec.evaluation.metrics import evaluate_scores

    def ndcg(hyperparams: Mapping[str, float]) -> float:
        result = evaluate_scores(
            lambda users: model.score(users, hyperparams),
            fold.train,
            fold.test,
            k=k,
            device=model.device,
        )
        return result["ndcg"]

    scores = {
        component: ndcg(single_component(values, weight))
        for component, weight in COMPONENT_WEIGHTS.items()
        if weight in model.space.names
    }
    scores["hybrid"] = ndcg(values)
    return scores


def users_per_second(
    model: HybridRecommender, values: Mapping[str, float], seconds: float = 3.0
) -> dict[str, float]:
    """Return how many users per second ``score`` and ``recommend(k=10)`` handle."""
    users = torch.arange(model.n_users, device=model.device)
    rates = {}
    for name, call in (
        ("score", lambda: model.score(users, values)),
        ("recommend", lambda: model.recommend(users, values, k=10)),
    ):
        call()
        started, scored = time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            call()
            scored += len(users)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        rates[name] = scored / (time.perf_counter() - started)
    return rates


def main(argv: list[str] | None = None) -> None:
    from adaptrec.data import kfold_split, load_dataset
    from adaptrec.evaluation.baselines import popularity_score_fn
    from adaptrec.evaluation.metrics import evaluate_scores
    from adaptrec.hyperparams import HyperparamSpace
    from adaptrec.models.hybrid import ItemEmbeddings, ModelConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["full", "quick"], default="full")
    parser.add_argument("--fold", type=int, default=0, help="fold index, 0..4")
    parser.add_argument("--hyperparams", help="YAML space (default: packaged)")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default: torch's choice)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    config = ModelConfig.quick() if args.preset == "quick" else ModelConfig()
    dataset = load_dataset("ml-100k")
    fold = kfold_split(dataset, n_folds=5, seed=0)[args.fold]
    space = HyperparamSpace.from_yaml(args.hyperparams)
    values = space.initial()

    started = time.perf_counter()
    embeddings = ItemEmbeddings.compute(dataset, config)
    embedded = time.perf_counter()
    model = HybridRecommender.fit(dataset, fold.train, space, config, embeddings)
    fitted = time.perf_counter()
    model.prepare([values])
    prepared = time.perf_counter()

    popularity = evaluate_scores(
        popularity_score_fn(fold.train, device=model.device),
        fold.train,
        fold.test,
        k=10,
        device=model.device,
    )
    report = {
        "preset": args.preset,
        "fold": args.fold,
        "device": str(model.device),
        "torch_threads": torch.get_num_threads(),
        "ndcg@10": {"popularity": popularity["ndcg"]}
        | component_ndcg(model, fold, values),
        "seconds": {
            "item_embeddings": embedded - started,
            "fit": fitted - embedded,
            "train_initial_beta_gamma": prepared - fitted,
        },
        "users_per_second": users_per_second(model, values),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
