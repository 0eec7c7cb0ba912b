"""Knowledge-graph item vectors (Node2Vec) and their fine-tuning on interactions.

The graph has one node per KG entity and one per linked item. Every triple
``(head, relation, tail)`` adds an undirected edge ``head - tail`` (the relation is
not used), and every item-entity link adds ``item - entity``. Node2Vec
(Grover and Leskovec, KDD 2016) samples biased random walks with return parameter
``p`` and in-out parameter ``q`` and trains skip-gram on them. ``fastnode2vec``
runs the walks in numba and the skip-gram in gensim's Word2Vec.

The vectors know nothing about users. ``fit_kg_projection`` fine-tunes them on the
training interactions with L2 penalty ``gamma``: the ridge map ``W`` that best
reconstructs the user rows ``X`` from ``X E``,
``W = (E^T X^T X E + gamma I)^-1 E^T X^T X``, so ``KGScore = X E W``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from adaptrec.models.common import ModelError, content_hash

logger = logging.getLogger(__name__)


@dataclass
class Node2VecParams:
    """Node2Vec walk and skip-gram settings.

    Attributes:
        dim: Size of each node vector.
        walk_length: Nodes per random walk.
        context: Skip-gram window on each side of a node in a walk.
        p: Return parameter; above 1 makes stepping back less likely.
        q: In-out parameter; below 1 favours moving away (DFS-like).
        epochs: Walks started from every node.
        seed: Seeds the walks; the skip-gram weights start from gensim's seed.
        workers: Skip-gram threads; above 1 makes the vectors nondeterministic,
            because gensim's threads race on shared weights.
    """

    dim: int
    walk_length: int
    context: int
    p: float
    q: float
    epochs: int
    seed: int
    workers: int = 1


def build_edges(
    n_items: int, kg: pd.DataFrame | None, item_entities: dict[int, str]
) -> list[tuple[str, str]]:
    """Return the undirected edges of the item-entity graph as node-name pairs.

    Entities are named ``"e:<id>"`` and items ``"i:<index>"``; self-loops and
    repeated edges are dropped, and the result is sorted so its hash is stable.

    Raises:
        ModelError: when a link names an item index outside ``0..n_items-1`` or
            the triples lack the ``head`` and ``tail`` columns.
    """
    edges: set[tuple[str, str]] = set()
    if kg is not None and len(kg):
        missing = [column for column in ("head", "tail") if column not in kg.columns]
        if missing:
            raise ModelError(
                f"knowledge-graph triples need columns 'head' and 'tail'; "
                f"missing {missing}, found {list(kg.columns)}"
            )
        heads = "e:" + kg["head"].astype(str)
        tails = "e:" + kg["tail"].astype(str)
        for head, tail in zip(heads, tails, strict=True):
            if head != tail:
                edges.add((head, tail) if head < tail else (tail, head))
    for item, entity in item_entities.items():
        if not 0 <= int(item) < n_items:
            raise ModelError(
                f"item-entity link names item index {item}, outside 0..{n_items - 1}"
            )
        edges.add((f"i:{int(item)}", f"e:{entity}"))
    return sorted(edges)


def node2vec_item_vectors(
    n_items: int,
    edges: list[tuple[str, str]],
    params: Node2VecParams,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Train Node2Vec on ``edges`` and return the item rows.

    With ``cache_dir``, the result is read from and written to
    ``cache_dir/kg-<hash>.npz``, keyed by the edges and ``params``.

    Returns:
        ``(vectors, mask)``: ``[n_items, dim]`` float32 vectors, zero where
        ``mask`` (``[n_items]`` bool) is False because the item has no node.
    """
    mask = np.zeros(n_items, dtype=bool)
    vectors = np.zeros((n_items, params.dim), dtype=np.float32)
    item_nodes = [name for pair in edges for name in pair if name.startswith("i:")]
    if not item_nodes:
        logger.warning(
            "knowledge graph: no item is linked to an entity; KG vectors are 0"
        )
        return vectors, mask

    cache_file = None
    if cache_dir is not None:
        key = content_hash(
            [repr(sorted(vars(params).items())), str(n_items)]
            + [f"{a}\t{b}" for a, b in edges]
        )[:24]
        cache_file = Path(cache_dir) / f"kg-{key}.npz"
        cached = _read_cache(cache_file, n_items, params.dim)
        if cached is not None:
            logger.info("knowledge graph: read item vectors from %s", cache_file)
            return cached

    from fastnode2vec import Graph, Node2Vec

    logger.info(
        "knowledge graph: Node2Vec over %d edges, %d epochs of walks of length %d",
        len(edges),
        params.epochs,
        params.walk_length,
    )
    # gensim logs every vocabulary and training step at INFO.
    gensim_logger = logging.getLogger("gensim")
    gensim_level = gensim_logger.level
    gensim_logger.setLevel(logging.WARNING)
    try:
        graph = Graph(edges, directed=False, weighted=False, verbose=progress)
        model = Node2Vec(
            graph,
            dim=params.dim,
            walk_length=params.walk_length,
            window=params.context,
            p=params.p,
            q=params.q,
            workers=params.workers,
            seed=params.seed,
        )
        model.train(epochs=params.epochs, verbose=progress)
    finally:
        gensim_logger.setLevel(gensim_level)
    for name in set(item_nodes):
        index = int(name[2:])
        vectors[index] = model.wv[name]
        mask[index] = True

    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_suffix(".partial.npz")
        np.savez(partial, vectors=vectors, mask=mask)
        partial.replace(cache_file)
        logger.info("knowledge graph: cached item vectors in %s", cache_file)
    return vectors, mask


def _read_cache(
    path: Path, n_items: int, dim: int
) -> tuple[np.ndarray, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            vectors, mask = archive["vectors"], archive["mask"]
    except (OSError, ValueError, KeyError) as error:
        logger.warning("KG cache %s is unreadable (%s); retraining", path, error)
        return None
    if vectors.shape != (n_items, dim) or mask.shape != (n_items,):
        logger.warning("KG cache %s has the wrong shape; retraining", path)
        return None
    return vectors.astype(np.float32), mask.astype(bool)


def normalize_item_vectors(vectors: torch.Tensor) -> torch.Tensor:
    """Scale each item vector to unit length; zero rows stay zero.

    Unit rows make ``gamma``'s scale independent of Node2Vec's vector norms.
    """
    return torch.nn.functional.normalize(vectors, dim=1)


def fit_kg_projection(
    train_rows: torch.Tensor, item_vectors: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Fit the ridge map ``W`` from ``X E`` back to ``X``, ``[dim, n_items]``.

    Solved in float64 with a Cholesky factorisation, since ``gamma > 0`` makes the
    ``dim x dim`` system positive definite.

    Raises:
        ModelError: when ``gamma`` is not positive.
    """
    if not gamma > 0:
        raise ModelError(f"KG regularisation gamma must be positive, got {gamma}")
    rows = train_rows.double()
    latent = rows @ item_vectors.double()
    gram = latent.T @ latent
    gram.diagonal().add_(gamma)
    target = latent.T @ rows
    factor = torch.linalg.cholesky(gram)
    return torch.cholesky_solve(target, factor).float()


def kg_scores(
    train_rows: torch.Tensor, item_vectors: torch.Tensor, projection: torch.Tensor
) -> torch.Tensor:
    """Return ``X E W`` for dense binary user rows, ``[B, n_items]``."""
    return (train_rows @ item_vectors) @ projection
