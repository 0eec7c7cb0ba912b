"""Save and load a fitted hybrid recommender as a folder of artefacts.

The model server loads what the trainer saved, possibly on another machine and
release, so every file is listed in ``manifest.json`` with its SHA-256 and the
folder carries a format version. Layout::

    manifest.json          format, version, dataset, config, space, file digests
    ids.npz                user_ids and item_ids (raw ids as str)
    train.npz              the binary training matrix (scipy.sparse)
    embeddings.npz         content, kg and kg_mask item vectors
    ease.npy               EASE item-item weights
    content_map.npy        the content map from user profiles to item space
    nvdm-<i>.pt            one NVDM state dict per trained beta
    kg-projection-<i>.npy  one KG projection per trained gamma

Components are recomputed from these parts on load, so scores match the saved
recommender's on the same device.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch

from adaptrec.hyperparams import HyperparamError, HyperparamSpace
from adaptrec.models.common import ArtifactError, ModelError
from adaptrec.models.config import ModelConfig
from adaptrec.models.embeddings import ItemEmbeddings
from adaptrec.models.nvdm import NVDM

if TYPE_CHECKING:
    from adaptrec.models.hybrid import HybridRecommender

logger = logging.getLogger(__name__)

FORMAT = "adaptrec-hybrid"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def save_recommender(model: HybridRecommender, directory: Path) -> None:
    """Write ``model``'s artefacts into ``directory``, creating it if needed."""
    directory.mkdir(parents=True, exist_ok=True)
    scorer = model.scorer
    assert scorer.ease_weights is not None and scorer.content_map is not None

    files: list[str] = []

    def written(name: str) -> Path:
        files.append(name)
        return directory / name

    np.savez(written("ids.npz"), user_ids=model.user_ids, item_ids=model.item_ids)
    sp.save_npz(written("train.npz"), model.train)
    np.savez(
        written("embeddings.npz"),
        content=model.embeddings.content,
        kg=model.embeddings.kg,
        kg_mask=model.embeddings.kg_mask,
    )
    np.save(written("ease.npy"), scorer.ease_weights.cpu().numpy())
    np.save(written("content_map.npy"), scorer.content_map.cpu().numpy())

    nvdm_files = {}
    for index, beta in enumerate(sorted(scorer.nvdm_models)):
        name = f"nvdm-{index}.pt"
        state = {k: v.cpu() for k, v in scorer.nvdm_models[beta].state_dict().items()}
        torch.save(state, written(name))
        nvdm_files[name] = beta
    kg_files = {}
    for index, gamma in enumerate(sorted(scorer.kg_projections)):
        name = f"kg-projection-{index}.npy"
        np.save(written(name), scorer.kg_projections[gamma].cpu().numpy())
        kg_files[name] = gamma

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dataset": model.dataset_name,
        "n_users": model.n_users,
        "n_items": model.n_items,
        "config": model.config.to_dict(),
        "space": model.space.to_dicts(),
        "nvdm": nvdm_files,
        "kg_projections": kg_files,
        "files": {name: _sha256(directory / name) for name in sorted(files)},
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    logger.info(
        "saved the hybrid recommender to %s (%d NVDMs, %d KG projections)",
        directory,
        len(nvdm_files),
        len(kg_files),
    )


def load_recommender(directory: Path, device: torch.device) -> HybridRecommender:
    """Read a folder written by :func:`save_recommender` onto ``device``.

    Raises:
        ArtifactError: naming the file that is missing, corrupt, fails its
            checksum or has another format version.
    """
    from adaptrec.models.hybrid import HybridRecommender

    manifest = _read_manifest(directory)
    for name, digest in manifest["files"].items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(
                f"model artefact {path} is missing; save the model again"
            )
        if _sha256(path) != digest:
            raise ArtifactError(
                f"model artefact {path} does not match the SHA-256 in {MANIFEST}; "
                "the file is corrupt or was changed after saving"
            )

    try:
        config = ModelConfig.from_dict(manifest["config"])
        space = HyperparamSpace.from_dicts(
            manifest["space"], source=str(directory / MANIFEST)
        )
    except (ModelError, HyperparamError, TypeError) as error:
        raise ArtifactError(f"{directory / MANIFEST}: {error}") from None

    ids = _read_arrays(directory / "ids.npz", ("user_ids", "item_ids"))
    vectors = _read_arrays(directory / "embeddings.npz", ("content", "kg", "kg_mask"))
    train = _read(directory / "train.npz", lambda path: sp.load_npz(path).tocsr())
    embeddings = ItemEmbeddings(
        content=vectors["content"], kg=vectors["kg"], kg_mask=vectors["kg_mask"]
    )
    expected = (manifest["n_users"], manifest["n_items"])
    if train.shape != expected or embeddings.n_items != expected[1]:
        raise ArtifactError(
            f"{directory}: train.npz has shape {train.shape} and embeddings.npz "
            f"{embeddings.n_items} items, but {MANIFEST} records {expected}"
        )

    model = HybridRecommender(
        train=train,
        user_ids=ids["user_ids"],
        item_ids=ids["item_ids"],
        embeddings=embeddings,
        space=space,
        config=config,
        device=device,
        dataset_name=manifest["dataset"],
    )
    scorer = model.scorer
    scorer.ease_weights = _read_tensor(directory / "ease.npy", device)
    scorer.content_map = _read_tensor(directory / "content_map.npy", device)
    for name, beta in manifest["nvdm"].items():
        nvdm = NVDM(model.n_items, config.n_topics, config.nvdm_hidden)
        state = _read(
            directory / name, lambda path: torch.load(path, weights_only=True)
        )
        try:
            nvdm.load_state_dict(state)
        except (RuntimeError, KeyError) as error:
            raise ArtifactError(f"model artefact {directory / name}: {error}") from None
        scorer.nvdm_models[float(beta)] = nvdm.to(device).eval()
    for name, gamma in manifest["kg_projections"].items():
        scorer.kg_projections[float(gamma)] = _read_tensor(directory / name, device)

    model._standardize_fixed()
    for beta in list(scorer.nvdm_models):
        model._topic_matrix(beta)
    for gamma in list(scorer.kg_projections):
        model._kg_matrix(gamma)
    logger.info("loaded the hybrid recommender from %s onto %s", directory, device)
    return model


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactError(
            f"model artefact {path} is missing; is {directory} a folder written by "
            "HybridRecommender.save()?"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtifactError(
            f"model artefact {path} is not valid JSON: {error}"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not a {FORMAT!r} manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has format version {version!r}, but this adaptrec reads version "
            f"{FORMAT_VERSION}; save the model again with this release"
        )
    required = ("dataset", "n_users", "n_items", "config", "space", "nvdm")
    missing = [
        key for key in (*required, "kg_projections", "files") if key not in manifest
    ]
    if missing:
        raise ArtifactError(f"{path} lacks the keys {missing}")
    return manifest


def _read(path: Path, reader):
    try:
        return reader(path)
    except (
        OSError,
        ValueError,
        KeyError,
        EOFError,
        RuntimeError,
        zipfile.BadZipFile,
    ) as error:
        raise ArtifactError(f"model artefact {path} is unreadable: {error}") from None


def _read_arrays(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    def reader(path: Path) -> dict[str, np.ndarray]:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in keys}

    return _read(path, reader)


def _read_tensor(path: Path, device: torch.device) -> torch.Tensor:
    array = _read(path, lambda path: np.load(path, allow_pickle=False))
    return torch.from_numpy(array).to(device)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
