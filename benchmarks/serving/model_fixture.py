"""Fit the quick hybrid recommender on MovieLens-100K fold 0 and save it.

The serving benchmark runs this in a subprocess when no ``--model-dir`` is given.
"""

from __future__ import annotations

import logging
from pathlib import Path

from adaptrec.data import kfold_split, load_dataset
from adaptrec.hyperparams import HyperparamSpace
from adaptrec.models import HybridRecommender, ModelConfig

log = logging.getLogger(__name__)


def fit_and_save(directory: Path) -> None:
    """Fit with ``ModelConfig.quick()`` on fold 0 of 5 and save to ``directory``.

    The components for the space's initial hyperparameter set are trained before
    saving, so the server serves that set without training at start-up.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    space = HyperparamSpace.from_yaml()
    dataset = load_dataset("ml-100k")
    fold = kfold_split(dataset, n_folds=5, seed=0)[0]
    recommender = HybridRecommender.fit(dataset, fold.train, space, ModelConfig.quick())
    recommender.prepare([space.initial()])
    directory.mkdir(parents=True, exist_ok=True)
    recommender.save(directory)
    log.info("saved the quick hybrid recommender to %s", directory)
