"""Compute the feature frames that back the Feast sources, from ratings and models.

Each frame has the columns of one feature view in feature_repo/definitions.py plus
``event_timestamp``. Snapshots are per UTC day and stamped at the end of that day
(the next midnight), the moment the day's ratings are all known. A training example
at time t therefore gets only snapshots of days that ended at or before t, so its
own rating never leaks into its features.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from adaptrec.data.dataset import Dataset
from adaptrec.features.errors import FeatureStoreError

log = logging.getLogger(__name__)

DAY_SECONDS = 86_400
EVENT_TIMESTAMP = "event_timestamp"
# Items kept in a user's recent history, most recent first.
RECENT_ITEMS = 20
# Trailing window, in days, of the popularity and landscape counts.
POPULARITY_WINDOW_DAYS = 7
# Trailing window, in days, of a user's recent activity count.
ACTIVITY_WINDOW_DAYS = 30
# Share of the catalogue counted as its head in ``top_decile_share``.
HEAD_FRACTION = 0.1
# Histories encoded per call of the user topic encoder.
ENCODE_BATCH = 4096

UserTopicEncoder = Callable[[sp.csr_matrix], tuple[np.ndarray, np.ndarray]]


@dataclass
class FeatureInputs:
    """Model outputs the features are computed from, one row per item index.

    Attributes:
        content: Content embedding per item, ``[n_items, d_content]``.
        kg: Knowledge-graph embedding per item, ``[n_items, d_kg]``.
        kg_mask: Whether each item has a knowledge-graph entity, ``[n_items]``.
        item_topics: Topic vector per item, ``[n_items, n_topics]``.
        encode_user_topics: Maps a binary ``[n_histories, n_items]`` matrix of
            positively rated items to the topic posterior ``(mu, sigma)``, each
            ``[n_histories, n_topics]``.
    """

    content: np.ndarray
    kg: np.ndarray
    kg_mask: np.ndarray
    item_topics: np.ndarray
    encode_user_topics: UserTopicEncoder

    def check(self, n_items: int) -> None:
        """Raise FeatureStoreError unless every per-item array has ``n_items`` rows."""
        arrays = {
            "content": self.content,
            "kg": self.kg,
            "kg_mask": self.kg_mask,
            "item_topics": self.item_topics,
        }
        for name, array in arrays.items():
            if len(array) != n_items:
                raise FeatureStoreError(
                    f"feature input {name!r} has {len(array)} rows but the dataset "
                    f"has {n_items} items: compute the models on the same dataset"
                )


def _day_end(days: np.ndarray) -> pd.DatetimeIndex:
    """Return the UTC instant at which each day (days since the epoch) ends."""
    return pd.to_datetime((days.astype(np.int64) + 1) * DAY_SECONDS, unit="s", utc=True)


def _day_start(days: np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime(days.astype(np.int64) * DAY_SECONDS, unit="s", utc=True)


def _sorted_ratings(dataset: Dataset) -> pd.DataFrame:
    ratings = dataset.ratings[["user", "item", "rating", "timestamp"]].copy()
    if ratings.empty:
        raise FeatureStoreError(
            f"dataset {dataset.name!r} has no ratings: features need at least one"
        )
    ratings["day"] = ratings["timestamp"].to_numpy(np.int64) // DAY_SECONDS
    ratings["positive"] = ratings["rating"] >= dataset.positive_threshold
    # Ties on the timestamp are broken by item index so reruns give the same order.
    return ratings.sort_values(["user", "timestamp", "item"], kind="stable")


def compute_user_profiles(
    dataset: Dataset,
    ratings: pd.DataFrame,
    encode_user_topics: UserTopicEncoder,
) -> pd.DataFrame:
    """Compute one profile snapshot per user and UTC day with at least one rating."""
    item_ids = dataset.item_ids.astype(str)
    rows: list[tuple] = []
    history_rows: list[np.ndarray] = []

    # Per user: cumulative counts at the end of each active day, and the history
    # (positive items so far) that the topic encoder reads.
    for user, group in ratings.groupby("user", sort=True):
        items = group["item"].to_numpy()
        positive = group["positive"].to_numpy()
        days = group["day"].to_numpy()
        active_days, per_day = np.unique(days, return_counts=True)
        cumulative = np.cumsum(per_day)
        cumulative_positive = np.cumsum(positive)[cumulative - 1]
        positive_items = items[positive]
        # Ratings up to the end of the day ACTIVITY_WINDOW_DAYS before each snapshot.
        window_start = np.searchsorted(
            active_days, active_days - ACTIVITY_WINDOW_DAYS, side="right"
        )
        before_window = np.where(window_start > 0, cumulative[window_start - 1], 0)
        for index, day in enumerate(active_days):
            count = int(cumulative[index])
            recent = items[max(0, count - RECENT_ITEMS) : count][::-1]
            rows.append(
                (
                    str(dataset.user_ids[user]),
                    int(day),
                    item_ids[recent].tolist(),
                    count,
                    int(cumulative_positive[index]),
                    count - int(before_window[index]),
                    index + 1,
                )
            )
            history_rows.append(positive_items[: int(cumulative_positive[index])])

    frame = pd.DataFrame(
        rows,
        columns=[
            "user_id",
            "day",
            "recent_item_ids",
            "n_ratings",
            "n_positives",
            "n_ratings_30d",
            "active_days",
        ],
    )

    # Encode every snapshot's history in batches: one CSR row per snapshot.
    lengths = np.array([len(history) for history in history_rows], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = np.concatenate(history_rows) if lengths.sum() else np.empty(0, np.int64)
    histories = sp.csr_matrix(
        (np.ones(len(indices), np.float32), indices, indptr),
        shape=(len(history_rows), dataset.n_items),
    )
    means, stds = [], []
    for start in range(0, histories.shape[0], ENCODE_BATCH):
        mu, sigma = encode_user_topics(histories[start : start + ENCODE_BATCH])
        means.append(np.asarray(mu, dtype=np.float32))
        stds.append(np.asarray(sigma, dtype=np.float32))
    frame["topic_mean"] = list(np.concatenate(means))
    frame["topic_std"] = list(np.concatenate(stds))
    frame[EVENT_TIMESTAMP] = _day_end(frame["day"].to_numpy())
    return frame.drop(columns="day")


def compute_item_content(
    dataset: Dataset, ratings: pd.DataFrame, inputs: FeatureInputs
) -> pd.DataFrame:
    """Compute one row per item, stamped at the start of the item's first rated day.

    Items without ratings are stamped at the start of the dataset's first day.
    """
    first_day = ratings.groupby("item")["day"].min()
    days = np.full(dataset.n_items, ratings["day"].min(), dtype=np.int64)
    days[first_day.index.to_numpy()] = first_day.to_numpy()
    kg_mask = np.asarray(inputs.kg_mask, dtype=bool)
    kg = np.where(kg_mask[:, None], np.asarray(inputs.kg, dtype=np.float32), 0.0)
    return pd.DataFrame(
        {
            "item_id": dataset.item_ids.astype(str),
            EVENT_TIMESTAMP: _day_start(days),
            "content_embedding": list(np.asarray(inputs.content, dtype=np.float32)),
            "kg_embedding": list(kg.astype(np.float32)),
            "has_kg": kg_mask,
            "topic_vector": list(np.asarray(inputs.item_topics, dtype=np.float32)),
        }
    )


def _trailing_sum(daily: np.ndarray, window: int) -> np.ndarray:
    """Sum each row of a ``[n, days]`` array over the trailing ``window`` days."""
    cumulative = np.cumsum(daily, axis=1, dtype=np.float64)
    shifted = np.zeros_like(cumulative)
    shifted[:, window:] = cumulative[:, :-window]
    return cumulative - shifted


def _softmax_rows(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _daily_matrix(
    rows: np.ndarray, days: np.ndarray, n_rows: int, n_days: int, weights=None
) -> np.ndarray:
    matrix = np.zeros((n_rows, n_days), dtype=np.float64)
    np.add.at(matrix, (rows, days), 1.0 if weights is None else weights)
    return matrix


def compute_popularity_and_landscape(
    dataset: Dataset, ratings: pd.DataFrame, item_topics: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compute per-item popularity and the catalogue landscape for every UTC day.

    A row exists for each day, up to the last day with a rating, whose trailing
    window has at least one rating (of the item, or anywhere for the landscape).
    """
    first_day = int(ratings["day"].min())
    n_days = int(ratings["day"].max()) - first_day + 1
    day_index = ratings["day"].to_numpy() - first_day
    items = ratings["item"].to_numpy()
    window = POPULARITY_WINDOW_DAYS

    # [n_items, n_days] trailing-window counts; dense is small for MovieLens
    # (1,682 items x 215 days for ML-100K).
    counts = _trailing_sum(
        _daily_matrix(items, day_index, dataset.n_items, n_days), window
    )
    positives = _trailing_sum(
        _daily_matrix(
            items,
            day_index,
            dataset.n_items,
            n_days,
            ratings["positive"].to_numpy(np.float64),
        ),
        window,
    )
    rating_sums = _trailing_sum(
        _daily_matrix(
            items, day_index, dataset.n_items, n_days, ratings["rating"].to_numpy()
        ),
        window,
    )
    totals = counts.sum(axis=0)

    # Item popularity: one row per (item, day) with a non-empty window.
    item_rows, day_cols = np.nonzero(counts > 0)
    popularity = pd.DataFrame(
        {
            "item_id": dataset.item_ids.astype(str)[item_rows],
            EVENT_TIMESTAMP: _day_end(day_cols + first_day),
            "ratings_7d": counts[item_rows, day_cols].astype(np.int64),
            "positives_7d": positives[item_rows, day_cols].astype(np.int64),
            "mean_rating_7d": (
                rating_sums[item_rows, day_cols] / counts[item_rows, day_cols]
            ).astype(np.float32),
            "share_7d": (counts[item_rows, day_cols] / totals[day_cols]).astype(
                np.float32
            ),
        }
    )
    popularity = popularity.sort_values(["item_id", EVENT_TIMESTAMP], kind="stable")

    # Landscape: one catalogue-wide row per day with a non-empty window.
    active = np.nonzero(totals > 0)[0]
    users_daily = _daily_matrix(
        ratings["user"].to_numpy(), day_index, dataset.n_users, n_days
    )
    active_users = (_trailing_sum(users_daily, window) > 0).sum(axis=0)
    shares = counts[:, active] / totals[active]
    topic_mix = shares.T @ _softmax_rows(np.asarray(item_topics, dtype=np.float64))
    active_items = (counts[:, active] > 0).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(shares > 0, shares * np.log(shares), 0.0).sum(axis=0)
        normalised_entropy = np.where(
            active_items > 1, entropy / np.log(np.maximum(active_items, 2)), 0.0
        )
    head = max(1, int(np.ceil(HEAD_FRACTION * dataset.n_items)))
    head_share = -np.sort(-shares, axis=0)[:head].sum(axis=0)
    landscape = pd.DataFrame(
        {
            EVENT_TIMESTAMP: _day_end(active + first_day),
            "topic_distribution": list(topic_mix.astype(np.float32)),
            "landscape_ratings_7d": totals[active].astype(np.int64),
            "active_users_7d": active_users[active].astype(np.int64),
            "active_items_7d": active_items.astype(np.int64),
            "popularity_entropy": normalised_entropy.astype(np.float32),
            "top_decile_share": head_share.astype(np.float32),
        }
    )
    return popularity.reset_index(drop=True), landscape


def compute_feature_frames(
    dataset: Dataset, inputs: FeatureInputs
) -> dict[str, pd.DataFrame]:
    """Compute every feature view's source frame, keyed by feature view name.

    Raises:
        FeatureStoreError: The dataset has no ratings, or an input array does not
            have one row per item.
    """
    inputs.check(dataset.n_items)
    ratings = _sorted_ratings(dataset)
    log.info(
        "features: computing from %d ratings of %d users on %d items",
        len(ratings),
        dataset.n_users,
        dataset.n_items,
    )
    popularity, landscape = compute_popularity_and_landscape(
        dataset, ratings, inputs.item_topics
    )
    return {
        "user_profile": compute_user_profiles(
            dataset, ratings, inputs.encode_user_topics
        ),
        "item_content": compute_item_content(dataset, ratings, inputs),
        "item_popularity": popularity,
        "content_landscape": landscape,
    }
