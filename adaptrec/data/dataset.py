"""The in-memory dataset every component reads: interactions, item text and KG."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp


class DataError(ValueError):
    """A data file is missing, corrupt or in an unexpected layout."""


@dataclass
class Dataset:
    """Ratings, item metadata and an optional knowledge graph, with dense indices.

    Users and items are re-indexed to ``0..n-1``; ``user_ids`` and ``item_ids`` map
    an index back to the raw id from the source files.

    Attributes:
        name: Source name, such as ``"ml-100k"``.
        user_ids: Raw user id (as ``str``) per user index.
        item_ids: Raw item id (as ``str``) per item index.
        ratings: One row per rating with columns ``user`` and ``item`` (int indices),
            ``rating`` (float) and ``timestamp`` (int, Unix seconds).
        items: One row per item index with columns ``title`` (str), ``year``
            (float, NaN when unknown) and ``genres`` (list of str).
        kg: Knowledge-graph triples with columns ``head``, ``relation``, ``tail``
            (entity ids as str), or ``None`` when the source has no graph.
        item_entities: Item index to the KG entity id that denotes the item; items
            without a link are absent.
        positive_threshold: Ratings at or above this value count as positives.
    """

    name: str
    user_ids: np.ndarray
    item_ids: np.ndarray
    ratings: pd.DataFrame
    items: pd.DataFrame
    kg: pd.DataFrame | None = None
    item_entities: dict[int, str] = field(default_factory=dict)
    positive_threshold: float = 4.0

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def positives(self) -> sp.csr_matrix:
        """Return the binary user-item matrix of ratings >= ``positive_threshold``."""
        liked = self.ratings[self.ratings["rating"] >= self.positive_threshold]
        data = np.ones(len(liked), dtype=np.float32)
        matrix = sp.csr_matrix(
            (data, (liked["user"].to_numpy(), liked["item"].to_numpy())),
            shape=(self.n_users, self.n_items),
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix


@dataclass
class Fold:
    """One cross-validation fold of the positives matrix.

    ``train`` and ``test`` are disjoint binary ``n_users x n_items`` CSR matrices
    whose sum is the dataset's positives.
    """

    index: int
    train: sp.csr_matrix
    test: sp.csr_matrix
