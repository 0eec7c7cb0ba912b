"""Local folders in each supported layout, written as tiny files in tmp_path."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from adaptrec.data import DataError, load_dataset

from .movielens_files import write_ml1m, write_ml100k, write_ml_csv


def item_row(dataset, raw_id: str):
    index = int(np.flatnonzero(dataset.item_ids == raw_id)[0])
    return dataset.items.iloc[index]


def test_ml100k_layout_loaded(tmp_path):
    dataset = load_dataset(write_ml100k(tmp_path / "ml-100k"))

    assert dataset.name == "ml-100k"
    assert list(dataset.user_ids) == ["1", "2", "3"]
    assert list(dataset.item_ids) == ["10", "20", "30"]
    assert len(dataset.ratings) == 5
    assert dataset.kg is None
    assert dataset.item_entities == {}

    toy_story = item_row(dataset, "10")
    assert toy_story["title"] == "Toy Story"
    assert toy_story["year"] == 1995.0
    assert toy_story["genres"] == ["Animation", "Comedy"]
    # u.item is latin-1, so é is one byte there.
    assert item_row(dataset, "20")["title"] == "Café au Lait"
    # No year in the title: the release date gives it.
    assert item_row(dataset, "30")["year"] == 1971.0


def test_ml100k_layout_without_genre_file(tmp_path):
    dataset = load_dataset(write_ml100k(tmp_path / "data", with_genre_file=False))

    assert item_row(dataset, "10")["genres"] == ["Animation", "Comedy"]


def test_ml100k_positives_follow_threshold(tmp_path):
    folder = write_ml100k(tmp_path / "data")

    default = load_dataset(folder).positives()
    lowered = load_dataset(folder, positive_threshold=3.0).positives()

    # Ratings 5, 3, 4, 1, 4: three reach 4.0 and four reach 3.0.
    assert default.nnz == 3
    assert lowered.nnz == 4
    assert set(default.data) == {1.0}


def test_ml1m_layout_loaded(tmp_path):
    dataset = load_dataset(write_ml1m(tmp_path / "ml-1m"))

    assert list(dataset.user_ids) == ["1", "2"]
    assert list(dataset.item_ids) == ["661", "1193", "3952"]
    assert len(dataset.ratings) == 3

    peach = item_row(dataset, "661")
    assert peach["title"] == "James and the Giant Peach"
    assert peach["year"] == 1996.0
    assert peach["genres"] == ["Animation", "Children's", "Musical"]
    # A colon inside a title does not split the "::" separated row.
    assert item_row(dataset, "3952")["title"] == "Contender: The Sequel, The"


def test_ml_csv_layout_loaded(tmp_path):
    dataset = load_dataset(write_ml_csv(tmp_path / "ml-25m"))

    assert list(dataset.user_ids) == ["1", "7"]
    assert list(dataset.item_ids) == ["2", "11", "99", "150"]
    assert sorted(dataset.ratings["rating"]) == [2.0, 3.5, 4.0, 4.5]

    president = item_row(dataset, "11")
    assert president["title"] == "American President, The"
    assert president["genres"] == ["Comedy", "Drama", "Romance"]

    babylon = item_row(dataset, "99")
    assert babylon["title"] == "Babylon 5"
    assert np.isnan(babylon["year"])
    assert babylon["genres"] == []
    assert item_row(dataset, "150")["title"] == "Señorita Extraviada"


def test_ratings_indexed_by_user_and_time(tmp_path):
    dataset = load_dataset(write_ml1m(tmp_path / "ml-1m"))

    ratings = dataset.ratings
    assert ratings["user"].tolist() == [0, 0, 1]
    # User 1 rated 1193 at 978300760 and 661 at 978302109.
    assert ratings["item"].tolist() == [1, 0, 1]
    assert ratings["timestamp"].tolist() == [978300760, 978302109, 978298413]


def test_recbole_atomic_folder_loaded(tmp_path):
    folder = tmp_path / "mini"
    folder.mkdir()
    (folder / "mini.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "u1\ti1\t5\t100\nu1\ti2\t2\t101\nu2\ti2\t4\t102\n"
    )
    (folder / "mini.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "i1\tHeat\t1995\tAction Crime\ni2\tUp\tunknown\tAnimation\n"
    )
    (folder / "mini.kg").write_text(
        "head_id:token\trelation_id:token\ttail_id:token\n"
        "m.heat\tfilm.film.genre\tm.crime\nm.up\tfilm.film.genre\tm.animation\n"
    )
    (folder / "mini.link").write_text("item_id:token\tentity_id:token\ni1\tm.heat\n")

    dataset = load_dataset(folder)

    assert list(dataset.item_ids) == ["i1", "i2"]
    assert item_row(dataset, "i1")["genres"] == ["Action", "Crime"]
    assert np.isnan(item_row(dataset, "i2")["year"])
    assert dataset.kg is not None
    assert len(dataset.kg) == 2
    assert dataset.item_entities == {0: "m.heat"}


# Knowledge graph from --kg


def test_kg_with_sibling_link_file(tmp_path):
    folder = write_ml100k(tmp_path / "data")
    kg = tmp_path / "graph.kg"
    kg.write_text(
        "head\trelation\ttail\n"
        "m.toy\tfilm.film.genre\tm.animation\n"
        "m.cafe\tfilm.film.genre\tm.comedy\n"
    )
    (tmp_path / "graph.link").write_text("10\tm.toy\n20\tm.cafe\n999\tm.other\n")

    dataset = load_dataset(folder, kg_path=kg)

    assert dataset.kg is not None
    assert dataset.kg["relation"].tolist() == ["film.film.genre"] * 2
    # Item 999 is not in u.item, so its link is dropped.
    assert dataset.item_entities == {0: "m.toy", 1: "m.cafe"}


def test_kg_with_explicit_link_file(tmp_path):
    folder = write_ml100k(tmp_path / "data")
    kg = tmp_path / "triples.tsv"
    # Ids with colons are data, not a RecBole "name:type" header.
    kg.write_text("fb:m.toy\tfb:film.genre\tfb:m.animation\n")
    links = tmp_path / "items-to-entities.tsv"
    links.write_text("item_id\tentity_id\n10\tfb:m.toy\n")

    dataset = load_dataset(folder, kg_path=kg, link_path=links)

    assert dataset.kg is not None
    assert len(dataset.kg) == 1
    assert dataset.item_entities == {0: "fb:m.toy"}


def test_kg_links_items_by_equal_ids(tmp_path):
    folder = write_ml100k(tmp_path / "data")
    kg = tmp_path / "triples.tsv"
    kg.write_text("10\thas_genre\tComedy\n30\thas_genre\tDrama\nComedy\tsub\tArt\n")

    dataset = load_dataset(folder, kg_path=kg)

    assert dataset.item_entities == {0: "10", 2: "30"}


def test_kg_without_any_linked_item_rejected(tmp_path):
    folder = write_ml100k(tmp_path / "data")
    kg = tmp_path / "triples.tsv"
    kg.write_text("m.a\trel\tm.b\n")

    with pytest.raises(DataError, match="no item of the catalogue is linked"):
        load_dataset(folder, kg_path=kg)


def test_kg_replaces_packaged_graph_in_folder(tmp_path):
    folder = tmp_path / "mini"
    folder.mkdir()
    (folder / "mini.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\nu1\ti1\t5\t1\n"
    )
    (folder / "mini.item").write_text("item_id:token\ttitle:token_seq\ni1\tHeat\n")
    (folder / "mini.kg").write_text("m.heat\tr\tm.x\n")
    (folder / "mini.link").write_text("i1\tm.heat\n")
    other = tmp_path / "other.tsv"
    other.write_text("i1\tr2\tm.y\n")

    dataset = load_dataset(folder, kg_path=other)

    assert dataset.kg is not None
    assert dataset.kg["relation"].tolist() == ["r2"]
    assert dataset.item_entities == {0: "i1"}


def test_item_linked_twice_keeps_first(tmp_path, caplog):
    folder = write_ml100k(tmp_path / "data")
    kg = tmp_path / "graph.kg"
    kg.write_text("m.a\tr\tm.b\n")
    (tmp_path / "graph.link").write_text("10\tm.a\n10\tm.b\n")

    with caplog.at_level(logging.WARNING, logger="adaptrec.data"):
        dataset = load_dataset(folder, kg_path=kg)

    assert dataset.item_entities == {0: "m.a"}
    assert "1 item(s) are linked to more than one entity" in caplog.text
