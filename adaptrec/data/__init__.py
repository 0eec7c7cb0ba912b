"""Data loading, validation and cross-validation splits."""

from adaptrec.data.dataset import DataError, Dataset, Fold
from adaptrec.data.loader import load_dataset

__all__ = ["DataError", "Dataset", "Fold", "load_dataset"]
