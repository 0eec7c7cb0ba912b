"""Bad input: every failure is a DataError naming the file and what was expected."""

from __future__ import annotations

import logging

import pytest

from adaptrec.data import DataError, load_dataset

from .movielens_files import write_ml1m, write_ml100k, write_ml_csv


def test_missing_folder_rejected(tmp_path):
    with pytest.raises(DataError, match="not found") as error:
        load_dataset(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(error.value)


def test_file_instead_of_folder_rejected(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("1\t2\t3\t4\n")

    with pytest.raises(DataError, match="is not a folder"):
        load_dataset(path)


def test_unknown_layout_lists_expected_files(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here\n")

    with pytest.raises(DataError, match="no supported dataset layout") as error:
        load_dataset(tmp_path)
    message = str(error.value)
    for expected in ("NAME.inter", "u.data + u.item", "ratings.dat", "ratings.csv"):
        assert expected in message


@pytest.mark.parametrize(
    ("writer", "removed", "kept"),
    [
        (write_ml100k, "u.item", "u.data"),
        (write_ml1m, "movies.dat", "ratings.dat"),
        (write_ml_csv, "movies.csv", "ratings.csv"),
    ],
)
def test_missing_item_file_named(tmp_path, writer, removed, kept):
    folder = writer(tmp_path / "data")
    (folder / removed).unlink()

    with pytest.raises(DataError) as error:
        load_dataset(folder)
    assert f"found {kept} but not {removed}" in str(error.value)


def test_non_numeric_rating_named(tmp_path):
    folder = write_ml100k(tmp_path / "data")
    with (folder / "u.data").open("a") as handle:
        handle.write("4\t10\tfive\t881250960\n")

    with pytest.raises(DataError) as error:
        load_dataset(folder)
    message = str(error.value)
    assert str(folder / "u.data") in message
    assert "column rating must be numeric" in message
    assert "data row 6" in message
    assert "'five'" in message


def test_extra_column_rejected(tmp_path):
    folder = write_ml100k(tmp_path / "data")
    with (folder / "u.data").open("a") as handle:
        handle.write("4\t10\t5\t881250960\textra\n")

    with pytest.raises(DataError) as error:
        load_dataset(folder)
    assert str(folder / "u.data") in str(error.value)
    assert "4 fields" in str(error.value)


def test_short_row_rejected(tmp_path):
    folder = write_ml1m(tmp_path / "data")
    with (folder / "ratings.dat").open("a") as handle:
        handle.write("3::1193::4\n")

    with pytest.raises(DataError) as error:
        load_dataset(folder)
    assert str(folder / "ratings.dat") in str(error.value)
    assert "data row 4 has no value in column timestamp" in str(error.value)


def test_csv_missing_column_rejected(tmp_path):
    folder = write_ml_csv(tmp_path / "data")
    (folder / "ratings.csv").write_text("userId,movieId,score\n1,2,3\n")

    with pytest.raises(DataError) as error:
        load_dataset(folder)
    assert "lacks column(s) ['rating', 'timestamp']" in str(error.value)


def test_undecodable_csv_rejected(tmp_path):
    folder = write_ml_csv(tmp_path / "data")
    (folder / "movies.csv").write_bytes(
        "movieId,title,genres\n2,Señorita (2001),Drama\n".encode("latin-1")
    )

    with pytest.raises(DataError, match="not valid utf-8") as error:
        load_dataset(folder)
    assert str(folder / "movies.csv") in str(error.value)


def test_bad_genre_flags_rejected(tmp_path):
    folder = write_ml100k(tmp_path / "data")
    text = (folder / "u.item").read_bytes().decode("latin-1")
    (folder / "u.item").write_bytes(text.replace("|0|", "|x|", 1).encode("latin-1"))

    with pytest.raises(DataError, match="0/1 genre flags"):
        load_dataset(folder)


def test_atomic_header_without_types_rejected(tmp_path):
    (tmp_path / "x.inter").write_text(
        "user_id\titem_id\trating\ttimestamp\n1\t2\t3\t4\n"
    )
    (tmp_path / "x.item").write_text("item_id:token\ttitle:token_seq\n2\tHeat\n")

    with pytest.raises(DataError, match="is not 'name:type'") as error:
        load_dataset(tmp_path)
    assert str(tmp_path / "x.inter") in str(error.value)


def test_repeated_item_id_rejected(tmp_path):
    folder = write_ml1m(tmp_path / "data")
    with (folder / "movies.dat").open("a") as handle:
        handle.write("661::Peach Again (1996)::Drama\n")

    with pytest.raises(DataError, match="item id '661' appears more than once"):
        load_dataset(folder)


def test_no_positives_rejected(tmp_path):
    folder = write_ml100k(tmp_path / "data")

    with pytest.raises(DataError) as error:
        load_dataset(folder, positive_threshold=6.0)
    message = str(error.value)
    assert "positive threshold 6.0" in message
    assert "from 1.0 to 5.0" in message
    assert str(folder / "u.data") in message


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), "4"])
def test_invalid_threshold_rejected(tmp_path, threshold):
    folder = write_ml100k(tmp_path / "data")

    with pytest.raises(DataError, match="positive_threshold must be a finite number"):
        load_dataset(folder, positive_threshold=threshold)


def test_unknown_items_dropped_with_warning(tmp_path, caplog):
    folder = write_ml100k(tmp_path / "data")
    with (folder / "u.data").open("a") as handle:
        handle.write("4\t77\t5\t881250960\n4\t78\t5\t881250961\n1\t77\t4\t881250962\n")

    with caplog.at_level(logging.WARNING, logger="adaptrec.data"):
        dataset = load_dataset(folder)

    assert len(dataset.ratings) == 5
    # User 4 rated only unknown items, so the user is dropped too.
    assert list(dataset.user_ids) == ["1", "2", "3"]
    assert "Dropped 3 rating(s) of 2 item id(s) absent from" in caplog.text


def test_ratings_of_only_unknown_items_rejected(tmp_path):
    folder = write_ml100k(tmp_path / "data")
    (folder / "u.data").write_text("1\t77\t5\t881250960\n")

    with pytest.raises(DataError, match="no rating in .* refers to an item"):
        load_dataset(folder)


def test_repeated_rating_keeps_latest(tmp_path, caplog):
    folder = write_ml100k(tmp_path / "data")
    with (folder / "u.data").open("a") as handle:
        handle.write("1\t20\t5\t881250999\n")

    with caplog.at_level(logging.WARNING, logger="adaptrec.data"):
        dataset = load_dataset(folder)

    ratings = dataset.ratings
    repeated = ratings[(ratings["user"] == 0) & (ratings["item"] == 1)]
    assert repeated["rating"].tolist() == [5.0]
    assert "1 repeated rating(s)" in caplog.text


def test_empty_ratings_file_rejected(tmp_path):
    folder = write_ml100k(tmp_path / "data")
    (folder / "u.data").write_text("")

    with pytest.raises(DataError, match="has no ratings") as error:
        load_dataset(folder)
    assert str(folder / "u.data") in str(error.value)


def test_missing_kg_file_rejected(tmp_path):
    folder = write_ml100k(tmp_path / "data")

    with pytest.raises(DataError, match="knowledge-graph file .* not found"):
        load_dataset(folder, kg_path=tmp_path / "absent.kg")


def test_kg_with_two_columns_rejected(tmp_path):
    folder = write_ml100k(tmp_path / "data")
    kg = tmp_path / "graph.tsv"
    kg.write_text("m.a\tm.b\n")

    with pytest.raises(DataError) as error:
        load_dataset(folder, kg_path=kg)
    assert str(kg) in str(error.value)
    assert "no value in column tail" in str(error.value)


def test_link_path_without_kg_rejected(tmp_path):
    folder = write_ml100k(tmp_path / "data")

    with pytest.raises(DataError, match="link_path needs kg_path"):
        load_dataset(folder, link_path=tmp_path / "x.link")
