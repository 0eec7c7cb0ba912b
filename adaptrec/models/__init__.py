"""The hybrid recommender: EASE, content, Node2Vec KG and NVDM topic components."""

from adaptrec.models.common import ArtifactError, ModelError, default_device
from adaptrec.models.config import ModelConfig
from adaptrec.models.hybrid import (
    KNOWN_NAMES,
    HybridRecommender,
    ItemEmbeddings,
)

__all__ = [
    "KNOWN_NAMES",
    "ArtifactError",
    "HybridRecommender",
    "ItemEmbeddings",
    "ModelConfig",
    "ModelError",
    "default_device",
]
