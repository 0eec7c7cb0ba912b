"""Item vectors that do not depend on a fold: content and KG embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaptrec.data.dataset import Dataset
from adaptrec.models import content, kg
from adaptrec.models.common import ModelError, default_cache_dir
from adaptrec.models.config import ModelConfig


@dataclass
class ItemEmbeddings:
    """Item vectors that depend on item text and the KG only, not on a fold.

    Attributes:
        content: ``[n_items, 384]`` L2-normalised all-MiniLM-L6-v2 embeddings.
        kg: ``[n_items, d]`` Node2Vec vectors; zero rows where ``kg_mask`` is False.
        kg_mask: ``[n_items]`` bool, True for items linked to a KG entity.
    """

    content: np.ndarray
    kg: np.ndarray
    kg_mask: np.ndarray

    def __post_init__(self) -> None:
        n_items = len(self.content)
        if self.content.ndim != 2 or self.kg.ndim != 2 or self.kg_mask.ndim != 1:
            raise ModelError(
                "item embeddings must be content [n_items, dim], kg [n_items, dim] "
                f"and kg_mask [n_items]; got shapes {self.content.shape}, "
                f"{self.kg.shape} and {self.kg_mask.shape}"
            )
        if len(self.kg) != n_items or len(self.kg_mask) != n_items:
            raise ModelError(
                f"item embeddings disagree on the item count: content has {n_items}, "
                f"kg {len(self.kg)}, kg_mask {len(self.kg_mask)}"
            )

    @property
    def n_items(self) -> int:
        return len(self.content)

    @classmethod
    def compute(
        cls,
        dataset: Dataset,
        config: ModelConfig,
        cache_dir: str | Path | None = None,
    ) -> ItemEmbeddings:
        """Encode item texts and train Node2Vec, reusing on-disk caches.

        Args:
            dataset: Supplies ``items`` (title, year, genres), ``kg`` and
                ``item_entities``.
            config: Node2Vec settings and seed.
            cache_dir: Cache folder; defaults to ``models/`` in the adaptrec cache.
        """
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        if len(dataset.items) != dataset.n_items:
            raise ModelError(
                f"dataset {dataset.name!r} has {dataset.n_items} items but its item "
                f"table has {len(dataset.items)} rows"
            )
        content_vectors = content.encode_items(
            content.item_texts(dataset.items), cache_dir=cache
        )
        edges = kg.build_edges(dataset.n_items, dataset.kg, dataset.item_entities)
        kg_vectors, kg_mask = kg.node2vec_item_vectors(
            dataset.n_items, edges, config.node2vec_params(), cache_dir=cache
        )
        return cls(content=content_vectors, kg=kg_vectors, kg_mask=kg_mask)
