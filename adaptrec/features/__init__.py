"""Feast features: compute, write and materialise them, and read them back.

The core library never imports this package, so it runs without Feast; the
trainer, the model server and ``adaptrec features build`` do.
"""

from adaptrec.features.build import BuildSummary, build_features
from adaptrec.features.compute import FeatureInputs, compute_feature_frames
from adaptrec.features.errors import FeatureStoreError
from adaptrec.features.read import (
    OnlineFeatureReader,
    OnlineUserFeatures,
    popular_items,
    read_online_user_features,
    read_training_features,
)
from adaptrec.features.store import load_definitions, open_store

__all__ = [
    "BuildSummary",
    "FeatureInputs",
    "FeatureStoreError",
    "OnlineFeatureReader",
    "OnlineUserFeatures",
    "build_features",
    "compute_feature_frames",
    "load_definitions",
    "open_store",
    "popular_items",
    "read_online_user_features",
    "read_training_features",
]
