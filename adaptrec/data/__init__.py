"""Data loading, validation and cross-validation splits."""

from adaptrec.data.dataset import DataError, Dataset, Fold
from adaptrec.data.loader import load_dataset
from adaptrec.data.splits import kfold_split, validation_split

__all__ = [
    "DataError",
    "Dataset",
    "Fold",
    "kfold_split",
    "load_dataset",
    "validation_split",
]
