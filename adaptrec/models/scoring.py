"""Raw component scores of the hybrid recommender from users' training rows.

:class:`ComponentScorer` keeps the fitted parts (EASE weights, the content map,
one NVDM per ``beta``, one KG projection per ``gamma``) and turns dense binary
user rows ``[B, n_items]`` into unstandardised ``[B, n_items]`` scores. The
recommender z-scores them and caches the result for its training users.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import scipy.sparse as sp
import torch

from adaptrec.models import cf, content, kg, nvdm

if TYPE_CHECKING:
    from adaptrec.models.config import ModelConfig
    from adaptrec.models.embeddings import ItemEmbeddings

logger = logging.getLogger(__name__)


class ComponentScorer:
    """Fitted components and the functions that score user rows with them."""

    def __init__(
        self, embeddings: ItemEmbeddings, config: ModelConfig, device: torch.device
    ) -> None:
        self.config = config
        self.device = device
        self.item_content = torch.from_numpy(embeddings.content).float().to(device)
        self.item_kg = kg.normalize_item_vectors(
            torch.from_numpy(embeddings.kg).float().to(device)
        )
        self.ease_weights: torch.Tensor | None = None
        self.content_map: torch.Tensor | None = None
        self.nvdm_models: dict[float, nvdm.NVDM] = {}
        self.kg_projections: dict[float, torch.Tensor] = {}

    def fit_fixed(self, train: sp.csr_matrix, rows: torch.Tensor) -> None:
        """Fit the components that no tuned hyperparameter changes: EASE and the
        content map."""
        started = time.perf_counter()
        self.ease_weights = cf.fit_ease(train, self.config.ease_lambda, self.device)
        logger.info("EASE: fitted in %.1f s", time.perf_counter() - started)
        self.content_map = content.fit_content_map(
            rows,
            self.item_content,
            self.config.content_user_l2,
            self.config.content_item_l2,
        )

    def train_nvdm(self, train: sp.csr_matrix, beta: float) -> None:
        """Train the NVDM for learning rate ``beta`` unless it exists."""
        if beta not in self.nvdm_models:
            model, _ = nvdm.fit_nvdm(
                train, beta, self.config.nvdm_training(), device=self.device
            )
            self.nvdm_models[beta] = model

    def fit_kg(self, rows: torch.Tensor, gamma: float) -> None:
        """Fit the KG projection for penalty ``gamma`` unless it exists."""
        if gamma not in self.kg_projections:
            self.kg_projections[gamma] = kg.fit_kg_projection(rows, self.item_kg, gamma)

    def cf(self, rows: torch.Tensor) -> torch.Tensor:
        assert self.ease_weights is not None, "fit_fixed() runs before scoring"
        return cf.ease_scores(rows, self.ease_weights)

    def content(self, rows: torch.Tensor) -> torch.Tensor:
        assert self.content_map is not None, "fit_fixed() runs before scoring"
        profiles = content.user_profiles(rows, self.item_content) @ self.content_map
        return content.cosine_scores(profiles, self.item_content)

    def kg(self, rows: torch.Tensor, gamma: float) -> torch.Tensor:
        return kg.kg_scores(rows, self.item_kg, self.kg_projections[gamma])

    def topic(self, rows: torch.Tensor, beta: float) -> torch.Tensor:
        return self.nvdm_models[beta].topic_bias(rows)
