"""Item embeddings: the KG graph and Node2Vec, item text and all-MiniLM-L6-v2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from adaptrec.models import ItemEmbeddings, ModelConfig, ModelError
from adaptrec.models import content as content_module
from adaptrec.models.content import (
    EMBEDDING_DIM,
    encode_items,
    fit_content_map,
    item_texts,
)
from adaptrec.models.kg import Node2VecParams, build_edges, node2vec_item_vectors

from .conftest import tiny_dataset

PARAMS = Node2VecParams(
    dim=8, walk_length=6, context=2, p=1.0, q=0.5, epochs=2, seed=3, workers=1
)


# Knowledge graph


def test_edges_link_items_and_entities():
    kg = pd.DataFrame(
        {
            "head": ["a", "b", "a", "c"],
            "relation": ["r", "r", "r", "r"],
            "tail": ["b", "a", "a", "a"],
        }
    )
    edges = build_edges(3, kg, {0: "a", 2: "c"})
    assert edges == sorted(
        [("e:a", "e:b"), ("e:a", "e:c"), ("i:0", "e:a"), ("i:2", "e:c")]
    )


def test_edges_reject_bad_links():
    with pytest.raises(ModelError, match="item index 5, outside 0..2"):
        build_edges(3, None, {5: "a"})
    with pytest.raises(ModelError, match="missing \\['tail'\\]"):
        build_edges(3, pd.DataFrame({"head": ["a"], "object": ["b"]}), {})


def test_node2vec_same_seed_same_vectors(tmp_path):
    dataset = tiny_dataset()
    edges = build_edges(dataset.n_items, dataset.kg, dataset.item_entities)

    first, mask = node2vec_item_vectors(dataset.n_items, edges, PARAMS, progress=False)
    second, _ = node2vec_item_vectors(dataset.n_items, edges, PARAMS, progress=False)
    other_params = Node2VecParams(**{**vars(PARAMS), "seed": 4})
    other, _ = node2vec_item_vectors(
        dataset.n_items, edges, other_params, progress=False
    )

    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)
    assert mask.tolist() == [False, False] + [True] * (dataset.n_items - 2)
    assert np.all(first[~mask] == 0.0)
    assert np.all(np.linalg.norm(first[mask], axis=1) > 0)


def test_node2vec_reads_its_cache(tmp_path):
    dataset = tiny_dataset()
    edges = build_edges(dataset.n_items, dataset.kg, dataset.item_entities)
    vectors, _ = node2vec_item_vectors(dataset.n_items, edges, PARAMS, tmp_path, False)
    [cache_file] = tmp_path.glob("kg-*.npz")
    written = cache_file.stat().st_mtime_ns

    cached, mask = node2vec_item_vectors(
        dataset.n_items, edges, PARAMS, tmp_path, False
    )

    np.testing.assert_array_equal(cached, vectors)
    assert cache_file.stat().st_mtime_ns == written
    assert mask.sum() == dataset.n_items - 2


def test_node2vec_without_links_gives_zero_mask():
    vectors, mask = node2vec_item_vectors(4, [("e:a", "e:b")], PARAMS, progress=False)
    assert not mask.any()
    assert vectors.shape == (4, 8)
    assert np.all(vectors == 0.0)


# Item text and content vectors


def test_item_texts_join_title_year_genres():
    items = pd.DataFrame(
        {
            "title": ["Toy Story", "Unknown"],
            "year": [1995.0, np.nan],
            "genres": [["Animation", "Comedy"], []],
        }
    )
    assert item_texts(items) == ["Toy Story (1995) Animation, Comedy", "Unknown"]


def test_item_texts_need_title():
    with pytest.raises(ModelError, match="needs a 'title' column"):
        item_texts(pd.DataFrame({"genres": [[]]}))


def test_content_map_rejects_nonpositive_penalty():
    with pytest.raises(ModelError, match="item_l2 must be positive"):
        fit_content_map(torch.ones(2, 3), torch.ones(3, 4), 1.0, 0.0)


@pytest.mark.slow
def test_minilm_encodes_offline_and_caches(tmp_path, monkeypatch):
    texts = [
        "Toy Story (1995) Animation, Children's, Comedy",
        "Toy Story 2 (1999) Animation, Children's, Comedy",
        "Schindler's List (1993) Drama, War",
    ]
    vectors = encode_items(texts, cache_dir=tmp_path)

    assert vectors.shape == (3, EMBEDDING_DIM)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]

    # A stand-in loader that raises proves the second call never loads the model.
    def fail_to_load(device=None):
        raise AssertionError("the cached embeddings should have been used")

    monkeypatch.setattr(content_module, "load_sentence_model", fail_to_load)
    cached = encode_items(texts, cache_dir=tmp_path)
    np.testing.assert_array_equal(cached, vectors)


@pytest.mark.slow
def test_item_embeddings_compute_on_tiny_dataset(tmp_path):
    dataset = tiny_dataset()
    config = ModelConfig.quick(node2vec_dim=8, node2vec_walk_length=6)

    embeddings = ItemEmbeddings.compute(dataset, config, cache_dir=tmp_path)

    assert embeddings.content.shape == (dataset.n_items, EMBEDDING_DIM)
    assert embeddings.kg.shape == (dataset.n_items, 8)
    assert embeddings.kg_mask.sum() == dataset.n_items - 2
    assert len(list(tmp_path.glob("content-*.npy"))) == 1
    assert len(list(tmp_path.glob("kg-*.npz"))) == 1
