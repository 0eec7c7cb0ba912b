"""Fit the hybrid recommender's models and adapt their outputs to FeatureInputs."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch

from adaptrec.data.dataset import Dataset
from adaptrec.features.compute import FeatureInputs
from adaptrec.hyperparams import HyperparamSpace

log = logging.getLogger(__name__)


def inputs_from_models(
    dataset: Dataset,
    config=None,
    beta: float | None = None,
    device: torch.device | None = None,
) -> FeatureInputs:
    """Compute item embeddings, fit the NVDM for ``beta`` and return their outputs.

    The recommender is fitted on every positive rating of ``dataset``, and each
    profile snapshot is the NVDM posterior of the user's positives up to that day.

    Args:
        dataset: Ratings, items and knowledge graph.
        config: ``ModelConfig``; defaults to ``ModelConfig.quick()``.
        beta: NVDM learning rate; defaults to the default space's initial value.
        device: Defaults to CUDA when available, else CPU.
    """
    from adaptrec.models import HybridRecommender, ItemEmbeddings, ModelConfig

    config = config or ModelConfig.quick()
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    space = HyperparamSpace.from_yaml()
    if beta is None:
        beta = space.initial()["beta"] if "beta" in space.names else config.default_beta

    # NOTE: the models see every rating, so an early snapshot's topic posterior
    # comes from an encoder trained on later ratings too. Only the history fed to
    # the encoder is point-in-time; a per-fold build would need per-fold models.
    embeddings = ItemEmbeddings.compute(dataset, config)
    recommender = HybridRecommender.fit(
        dataset, dataset.positives(), space, config, embeddings, device=device
    )
    item_topics = recommender.item_topics(beta).detach().cpu().numpy()
    trained = recommender.trained_betas
    nvdm = recommender.scorer.nvdm_models[min(trained, key=lambda b: abs(b - beta))]
    log.info(
        "features: models fitted on %s (%d topics, beta=%g, %s)",
        dataset.name,
        item_topics.shape[1],
        beta,
        device,
    )

    def encode_user_topics(histories: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        bags = torch.as_tensor(histories.toarray(), dtype=torch.float32, device=device)
        with torch.no_grad():
            mu, sigma = nvdm.encode(bags)
        return mu.cpu().numpy(), sigma.cpu().numpy()

    return FeatureInputs(
        content=embeddings.content,
        kg=embeddings.kg,
        kg_mask=embeddings.kg_mask,
        item_topics=item_topics,
        encode_user_topics=encode_user_topics,
    )
