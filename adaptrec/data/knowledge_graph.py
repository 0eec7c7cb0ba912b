"""Knowledge-graph triples and the links from items to graph entities.

A triples file is tab-separated ``head, relation, tail``. A link file is
tab-separated ``item_id, entity_id``. Either may start with a header line: a RecBole
``name:type`` header, or the plain column names (``head relation tail``,
``item_id entity_id``).

Without a link file, an entity whose id equals a raw item id denotes that item, so a
graph written directly over item ids (``42  has_genre  Comedy``) needs no link file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from adaptrec.data.atomic import FIELD_TYPES
from adaptrec.data.dataset import DataError
from adaptrec.data.readers import TableSource, read_table

logger = logging.getLogger(__name__)

TRIPLE_COLUMNS = ["head", "relation", "tail"]
LINK_COLUMNS = ["item_id", "entity_id"]
_PLAIN_HEADERS = {
    ("head", "relation", "tail"),
    ("head_id", "relation_id", "tail_id"),
    ("item_id", "entity_id"),
    ("item", "entity"),
}


def _has_header(source: TableSource) -> bool:
    with source.open() as handle:
        first = handle.readline().decode("utf-8", errors="replace").rstrip("\r\n")
    fields = first.split("\t")
    # Entity ids may contain colons ("fb:m.0abc"), so only a RecBole field type
    # after the colon marks a header.
    typed = all(field.partition(":")[2] in FIELD_TYPES for field in fields)
    names = tuple(field.strip().lower() for field in fields)
    return typed or names in _PLAIN_HEADERS


def read_triples(source: TableSource) -> pd.DataFrame:
    """Read a triples file into columns ``head``, ``relation``, ``tail`` (str).

    Raises:
        DataError: A row does not have three non-empty fields, or the file has no
            triples.
    """
    triples = read_table(
        source, sep="\t", names=TRIPLE_COLUMNS, skip_header=_has_header(source)
    )
    if triples.empty:
        raise DataError(f"{source.name} has no triples")
    return triples


def read_links(source: TableSource) -> pd.DataFrame:
    """Read a link file into columns ``item_id`` and ``entity_id`` (str)."""
    links = read_table(
        source, sep="\t", names=LINK_COLUMNS, skip_header=_has_header(source)
    )
    return links


def link_items(
    links: pd.DataFrame | None,
    triples: pd.DataFrame,
    item_index: dict[str, int],
    source_name: str,
) -> dict[int, str]:
    """Map item indices to entity ids from a link table, or by equal ids without one.

    An item linked to several entities keeps its first link, with a logged warning.
    Links to items outside the catalogue are dropped.

    Raises:
        DataError: No item of the catalogue is linked to the graph.
    """
    if links is None:
        entities = pd.unique(pd.concat([triples["head"], triples["tail"]]))
        links = pd.DataFrame({"item_id": entities, "entity_id": entities})
        links = links[links["item_id"].isin(item_index.keys())]
        how = "entities named by raw item ids (no link file given)"
    else:
        how = "the link file"

    known = links["item_id"].isin(item_index.keys())
    if (~known).any():
        logger.info(
            "%s: dropped %d link(s) to items not in the catalogue",
            source_name,
            int((~known).sum()),
        )
    links = links[known]
    duplicated = links["item_id"].duplicated()
    if duplicated.any():
        logger.warning(
            "%s: %d item(s) are linked to more than one entity; kept the first link",
            source_name,
            int(links.loc[duplicated, "item_id"].nunique()),
        )
        links = links[~duplicated]

    if links.empty:
        raise DataError(
            f"{source_name}: no item of the catalogue is linked to a graph entity "
            f"through {how}; give a link file of 'item_id<TAB>entity_id' rows"
        )
    return {
        item_index[item]: entity
        for item, entity in zip(links["item_id"], links["entity_id"], strict=True)
    }


def find_link_file(kg_path: Path) -> Path | None:
    """Return ``<stem>.link`` beside a triples file, if it exists."""
    candidate = kg_path.with_suffix(".link")
    if candidate != kg_path and candidate.is_file():
        return candidate
    return None
