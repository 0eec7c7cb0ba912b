"""Saving and loading the hybrid recommender's artefacts."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from adaptrec.models import ArtifactError, HybridRecommender

from .conftest import hyperparams


@pytest.fixture()
def saved(recommender, tmp_path):
    recommender.score(torch.arange(2), hyperparams(beta=0.002, gamma=11.0))
    recommender.save(tmp_path / "model")
    return tmp_path / "model"


def test_round_trip_gives_identical_scores(recommender, saved):
    loaded = HybridRecommender.load(saved, device="cpu")
    users = torch.arange(recommender.n_users)

    assert loaded.trained_betas == [0.002]
    assert loaded.trained_gammas == [11.0]
    assert loaded.space.to_dicts() == recommender.space.to_dicts()
    assert loaded.config == recommender.config
    assert (loaded.user_ids == recommender.user_ids).all()
    assert (loaded.item_ids == recommender.item_ids).all()
    values = hyperparams(alpha=0.4, w_content=0.3, w_kg=0.2, w_topic=0.9, beta=0.002)
    values["gamma"] = 11.0
    assert torch.equal(loaded.score(users, values), recommender.score(users, values))
    assert torch.equal(loaded.cold_start_scores(), recommender.cold_start_scores())
    loaded_mu, _ = loaded.user_topics(users, 0.002)
    mu, _ = recommender.user_topics(users, 0.002)
    assert torch.equal(loaded_mu, mu)


def test_loaded_model_trains_new_values(saved):
    loaded = HybridRecommender.load(saved, device="cpu")
    loaded.score(torch.arange(2), hyperparams(beta=0.004, gamma=1.0))
    assert loaded.trained_betas == [0.002, 0.004]
    assert loaded.trained_gammas == [1.0, 11.0]


def test_missing_manifest_named(tmp_path):
    with pytest.raises(ArtifactError, match="manifest.json is missing"):
        HybridRecommender.load(tmp_path)


def test_missing_artifact_named(saved):
    (saved / "ease.npy").unlink()
    with pytest.raises(ArtifactError, match="ease.npy is missing"):
        HybridRecommender.load(saved)


def test_corrupt_artifact_named(saved):
    path = saved / "nvdm-0.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="nvdm-0.pt does not match the SHA-256"):
        HybridRecommender.load(saved)


def test_unreadable_artifact_named(saved):
    # A file rewritten with a matching digest but broken content, as a bad disk
    # or a hand edit of the manifest would leave it.
    path = saved / "train.npz"
    path.write_bytes(b"not a zip archive")
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["files"]["train.npz"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="train.npz is unreadable"):
        HybridRecommender.load(saved)


def test_wrong_format_version_named(saved):
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["format_version"] = 99
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="manifest.json has format version 99"):
        HybridRecommender.load(saved)


def test_manifest_not_json_named(saved):
    (saved / "manifest.json").write_text("{")
    with pytest.raises(ArtifactError, match="manifest.json is not valid JSON"):
        HybridRecommender.load(saved)
