"""Readers for each supported file layout, returning the same raw tables.

Supported layouts, detected from the files in a folder:

- RecBole atomic files: ``NAME.inter`` and ``NAME.item``, with optional ``NAME.kg``
  and ``NAME.link``. The packaged ml-100k copy uses this layout.
- GroupLens ml-100k: ``u.data`` (tab-separated ``user item rating timestamp``) and
  ``u.item`` (pipe-separated, latin-1, 19 genre flags named by ``u.genre``).
- GroupLens ml-1m and ml-10m: ``ratings.dat`` and ``movies.dat`` (``::``-separated,
  latin-1, genres separated by ``|``).
- GroupLens ml-20m, ml-25m and ml-latest: ``ratings.csv`` and ``movies.csv`` (comma
  separated with a header, UTF-8, genres separated by ``|``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from adaptrec.data import packaged
from adaptrec.data.atomic import first_present, read_atomic
from adaptrec.data.dataset import DataError
from adaptrec.data.knowledge_graph import read_links, read_triples
from adaptrec.data.readers import (
    TableSource,
    parse_year,
    read_table,
    require_columns,
    split_title_year,
)

RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]

# Genre names of ml-100k's u.item flags, in column order, for folders without u.genre.
ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
# movies.csv of ml-20m and later writes this for a film without genres.
_NO_GENRES = "(no genres listed)"


@dataclass
class RawTables:
    """Tables as read from one source, before ids are indexed and values checked.

    Attributes:
        ratings: String columns ``user_id``, ``item_id``, ``rating``, ``timestamp``.
        items: Columns ``item_id`` (str), ``title`` (str), ``year`` (float),
            ``genres`` (list of str).
        ratings_source: How messages name the ratings file.
        items_source: How messages name the item file.
        kg: Triples with columns ``head``, ``relation``, ``tail``, or ``None``.
        links: Columns ``item_id``, ``entity_id``, or ``None`` to link by equal ids.
        kg_source: How messages name the triples file.
    """

    ratings: pd.DataFrame
    items: pd.DataFrame
    ratings_source: str
    items_source: str
    kg: pd.DataFrame | None = None
    links: pd.DataFrame | None = None
    kg_source: str = ""


def _split_genres(values: pd.Series, sep: str) -> list[list[str]]:
    return [[g for g in text.split(sep) if g and g != _NO_GENRES] for text in values]


# RecBole atomic files


def _atomic_tables(
    inter: TableSource,
    item: TableSource,
    kg: TableSource | None,
    link: TableSource | None,
) -> RawTables:
    ratings = read_atomic(inter, required=RATING_COLUMNS)[RATING_COLUMNS]

    item_frame = read_atomic(item, required=["item_id"])
    title_column = first_present(item_frame, ["movie_title", "title"])
    if title_column is None:
        raise DataError(f"{item.name} lacks a title column (movie_title or title)")
    titles, title_years = split_title_year(item_frame[title_column])
    year_column = first_present(item_frame, ["release_year", "year"])
    years = parse_year(item_frame[year_column]) if year_column else title_years
    genre_column = first_present(item_frame, ["class", "genre", "genres"])
    genres = (
        _split_genres(item_frame[genre_column], " ")
        if genre_column
        else [[] for _ in range(len(item_frame))]
    )
    items = pd.DataFrame(
        {"item_id": item_frame["item_id"], "title": titles, "year": years}
    )
    items["genres"] = genres

    tables = RawTables(ratings, items, inter.name, item.name)
    if kg is not None:
        tables.kg = read_triples(kg)
        tables.kg_source = kg.name
        tables.links = read_links(link) if link is not None else None
    return tables


def read_packaged_ml100k(cache_dir: Path | str | None) -> RawTables:
    """Read RecBole's ml-100k copy, with its knowledge graph, from the cached wheel."""
    wheel = packaged.ensure_wheel(cache_dir)

    def member(suffix: str) -> TableSource:
        return TableSource(
            name=f"{wheel}!{packaged.member_name(suffix)}",
            content=packaged.read_member(wheel, suffix),
        )

    return _atomic_tables(member("inter"), member("item"), member("kg"), member("link"))


def _read_atomic_folder(folder: Path, inter_path: Path) -> RawTables:
    stem = inter_path.with_suffix("")
    item_path = stem.with_suffix(".item")
    if not item_path.is_file():
        raise DataError(
            f"{folder}: found {inter_path.name} but not {item_path.name}; RecBole "
            "atomic files need NAME.inter and NAME.item"
        )
    kg_path = stem.with_suffix(".kg")
    link_path = stem.with_suffix(".link")
    return _atomic_tables(
        TableSource.from_path(inter_path),
        TableSource.from_path(item_path),
        TableSource.from_path(kg_path) if kg_path.is_file() else None,
        TableSource.from_path(link_path) if link_path.is_file() else None,
    )


# GroupLens layouts


def _read_ml100k(folder: Path) -> RawTables:
    ratings_source = TableSource.from_path(folder / "u.data")
    ratings = read_table(
        ratings_source, sep="\t", names=RATING_COLUMNS, skip_header=False
    )

    genre_names = ML100K_GENRES
    genre_path = folder / "u.genre"
    if genre_path.is_file():
        genre_table = read_table(
            TableSource.from_path(genre_path),
            sep="|",
            names=["genre", "index"],
            skip_header=False,
            encoding="latin-1",
        )
        genre_names = list(genre_table["genre"])

    items_source = TableSource.from_path(folder / "u.item")
    columns = ["item_id", "title", "release_date", "video_release_date", "url"]
    columns += [f"genre_{i}" for i in range(len(genre_names))]
    raw = read_table(
        items_source,
        sep="|",
        names=columns,
        skip_header=False,
        encoding="latin-1",
        may_be_empty=("release_date", "video_release_date", "url"),
    )
    flags = raw[columns[5:]]
    if not flags.isin(["0", "1"]).all().all():
        raise DataError(
            f"{items_source.name}: the last {len(genre_names)} fields must be 0/1 "
            "genre flags"
        )

    titles, years = split_title_year(raw["title"])
    # Where the title has no year, fall back to the release date ("01-Jan-1995").
    release_years = parse_year(raw["release_date"].str[-4:])
    years = np.where(np.isnan(years), release_years, years)
    flag_matrix = flags.to_numpy() == "1"
    items = pd.DataFrame({"item_id": raw["item_id"], "title": titles, "year": years})
    items["genres"] = [
        [name for name, on in zip(genre_names, row, strict=True) if on]
        for row in flag_matrix
    ]
    return RawTables(ratings, items, ratings_source.name, items_source.name)


def _read_ml1m(folder: Path) -> RawTables:
    ratings_source = TableSource.from_path(folder / "ratings.dat")
    # A one-character separator keeps pandas' fast C parser: "1::2::5::9" splits on
    # ":" into seven fields whose even positions are empty.
    gaps = ("gap_1", "gap_2", "gap_3")
    split = read_table(
        ratings_source,
        sep=":",
        names=["user_id", gaps[0], "item_id", gaps[1], "rating", gaps[2], "timestamp"],
        skip_header=False,
        encoding="latin-1",
        may_be_empty=gaps,
    )
    if split[list(gaps)].ne("").any().any():
        raise DataError(
            f"{ratings_source.name} is not 'user::item::rating::timestamp' rows"
        )
    ratings = split[RATING_COLUMNS]

    items_source = TableSource.from_path(folder / "movies.dat")
    raw = read_table(
        items_source,
        sep="::",
        names=["item_id", "title", "genres"],
        skip_header=False,
        encoding="latin-1",
    )
    titles, years = split_title_year(raw["title"])
    items = pd.DataFrame({"item_id": raw["item_id"], "title": titles, "year": years})
    items["genres"] = _split_genres(raw["genres"], "|")
    return RawTables(ratings, items, ratings_source.name, items_source.name)


def _read_ml_csv(folder: Path) -> RawTables:
    ratings_source = TableSource.from_path(folder / "ratings.csv")
    raw_ratings = read_table(
        ratings_source, sep=",", names=None, skip_header=True, quoting=csv.QUOTE_MINIMAL
    )
    header = ["userId", "movieId", "rating", "timestamp"]
    require_columns(raw_ratings, header, ratings_source.name)
    ratings = raw_ratings[header].set_axis(RATING_COLUMNS, axis=1)

    items_source = TableSource.from_path(folder / "movies.csv")
    raw = read_table(
        items_source, sep=",", names=None, skip_header=True, quoting=csv.QUOTE_MINIMAL
    )
    require_columns(raw, ["movieId", "title", "genres"], items_source.name)
    titles, years = split_title_year(raw["title"])
    items = pd.DataFrame({"item_id": raw["movieId"], "title": titles, "year": years})
    items["genres"] = _split_genres(raw["genres"], "|")
    return RawTables(ratings, items, ratings_source.name, items_source.name)


# Layout detection

_GROUPLENS_LAYOUTS = [
    ("GroupLens ml-100k", "u.data", "u.item", _read_ml100k),
    ("GroupLens ml-1m/ml-10m", "ratings.dat", "movies.dat", _read_ml1m),
    ("GroupLens ml-20m/ml-25m", "ratings.csv", "movies.csv", _read_ml_csv),
]


def read_folder(folder: Path) -> RawTables:
    """Detect the layout of ``folder`` from the files present and read it.

    Raises:
        DataError: The folder is missing, or contains no supported layout (the
            message lists the files looked for), or contains a ratings file without
            its item file.
    """
    if not folder.exists():
        raise DataError(f"data folder {folder} not found")
    if not folder.is_dir():
        raise DataError(
            f"{folder} is not a folder; give the folder of the rating files"
        )

    inter_files = sorted(folder.glob("*.inter"))
    if len(inter_files) > 1:
        names = [p.name for p in inter_files]
        raise DataError(f"{folder} has several RecBole .inter files {names}; keep one")
    if inter_files:
        return _read_atomic_folder(folder, inter_files[0])

    for layout, ratings_name, items_name, reader in _GROUPLENS_LAYOUTS:
        if (folder / ratings_name).is_file():
            if not (folder / items_name).is_file():
                raise DataError(
                    f"{folder}: found {ratings_name} but not {items_name}; the "
                    f"{layout} layout needs both"
                )
            return reader(folder)

    looked_for = ["NAME.inter + NAME.item (RecBole atomic files)"] + [
        f"{r} + {i} ({layout})" for layout, r, i, _ in _GROUPLENS_LAYOUTS
    ]
    raise DataError(
        f"{folder} contains no supported dataset layout; looked for: "
        f"{'; '.join(looked_for)}"
    )
