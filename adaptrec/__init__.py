"""adaptrec: keep a hybrid recommender's hyperparameters tuned."""

__version__ = "0.1.0"
