"""Read features for training (point-in-time, offline) and serving (latest, online).

The trainer calls ``read_training_features`` with its (user, item, timestamp)
examples. The model server keeps one ``OnlineFeatureReader`` and calls
``read_users`` once per request batch. Users without a fresh profile come back
marked cold, and the server ranks items for them with ``popular_items``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
from feast import FeatureService, FeatureStore, FeatureView
from feast.errors import FeatureServiceNotFoundException
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

from adaptrec.features.compute import EVENT_TIMESTAMP
from adaptrec.features.errors import FeatureStoreError
from adaptrec.features.store import check_source, join_keys

log = logging.getLogger(__name__)

TRAINING_SERVICE = "training"
SERVING_SERVICE = "serving"
USER_KEY = "user_id"
ITEM_KEY = "item_id"
# The view whose absence makes a user cold.
PROFILE_VIEW = "user_profile"
POPULARITY_FEATURE = "item_popularity:ratings_7d"

# Outcomes of an online read for one user.
PRESENT = "present"
UNKNOWN = "unknown"
EXPIRED = "expired"

_BUILD_HINT = "run `adaptrec features build` first"
_PRESENT_STATUS = int(FieldStatus.PRESENT)


def _service(store: FeatureStore, name: str) -> FeatureService:
    try:
        return store.get_feature_service(name)
    except FeatureServiceNotFoundException as error:
        raise FeatureStoreError(
            f"feature service {name!r} is not registered in {store.repo_path}: "
            f"{_BUILD_HINT}"
        ) from error


def _service_views(
    store: FeatureStore, service: FeatureService
) -> list[tuple[FeatureView, list[str]]]:
    """Return each view of ``service`` with the feature names the service selects."""
    views = []
    for projection in service.feature_view_projections:
        view = store.get_feature_view(projection.name)
        views.append((view, [feature.name for feature in projection.features]))
    return views


def _found(vector) -> np.ndarray:
    """Return whether each row of an online response's feature vector has a value.

    SQLite marks a missing entity NOT_FOUND, but Feast 0.67's Redis store returns it
    as PRESENT with an empty value and a zero timestamp, so both are checked.
    """
    count = len(vector.statuses)
    statuses = np.fromiter(vector.statuses, dtype=np.int64, count=count)
    has_value = np.fromiter(
        (value.WhichOneof("val") is not None for value in vector.values),
        dtype=bool,
        count=count,
    )
    return (statuses == _PRESENT_STATUS) & has_value


def check_entity_ids(values: Sequence, key: str) -> None:
    """Raise FeatureStoreError unless every entity id in ``values`` is a ``str``.

    Feast serialises an int key differently from the str key written by the build,
    so a wrong type would silently read nothing.
    """
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise FeatureStoreError(
                f"entity key {key!r} must be a raw id as str, but value {value!r} "
                f"at position {index} is {type(value).__name__}: convert the ids "
                f"with str() (for a frame, frame[{key!r}].astype(str))"
            )


def _entity_frame(entity_df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Validate ``entity_df`` and return a copy with UTC event timestamps."""
    missing = [c for c in [*keys, EVENT_TIMESTAMP] if c not in entity_df.columns]
    if missing:
        raise FeatureStoreError(
            f"entity_df has no column {', '.join(repr(c) for c in missing)}: the "
            f"training service needs {', '.join(keys)} and {EVENT_TIMESTAMP}"
        )
    for key in keys:
        check_entity_ids(entity_df[key].tolist(), key)
    frame = entity_df.copy()
    try:
        frame[EVENT_TIMESTAMP] = pd.to_datetime(frame[EVENT_TIMESTAMP], utc=True)
    except (ValueError, TypeError) as error:
        raise FeatureStoreError(
            f"entity_df column {EVENT_TIMESTAMP!r} contains values that are not "
            f"timestamps ({error}): pass datetimes, UTC when naive"
        ) from error
    return frame


def read_training_features(
    store: FeatureStore,
    entity_df: pd.DataFrame,
    service: str = TRAINING_SERVICE,
) -> pd.DataFrame:
    """Join point-in-time correct features onto training examples.

    Each row of ``entity_df`` gets, per feature view, the latest row stamped at or
    before its ``event_timestamp`` and within the view's TTL, or nulls where there
    is none. Rows keep their order and extra columns.

    Args:
        store: An open feature store.
        entity_df: Columns ``user_id`` and ``item_id`` (str raw ids, as the views
            of ``service`` need) and ``event_timestamp``.
        service: Feature service to read.

    Raises:
        FeatureStoreError: The service is not registered, ``entity_df`` lacks a
            column or has ids of the wrong type, or a source is corrupt.
    """
    views = _service_views(store, _service(store, service))
    keys = sorted({key for view, _ in views for key in join_keys(view)})
    result = _entity_frame(entity_df, keys).reset_index(drop=True)
    for view, _ in views:
        check_source(store, view)

    # NOTE: one request per view, on distinct (keys, timestamp) rows, then a left
    # merge. The file offline store in Feast 0.67 drops an entity row when every
    # source row of a view lies outside its window. It also collapses distinct
    # entity rows that share a timestamp when the view has no entities. Either
    # would lose training examples in a single joined request.
    for view, features in views:
        view_keys = join_keys(view)
        distinct = result[[*view_keys, EVENT_TIMESTAMP]].drop_duplicates()
        references = [f"{view.name}:{feature}" for feature in features]
        try:
            joined = store.get_historical_features(
                entity_df=distinct, features=references
            ).to_df()
        except (pa.ArrowException, OSError) as error:
            raise FeatureStoreError(
                f"feature view {view.name!r}: failed to read its source ({error}); "
                "run `adaptrec features build` to rewrite it"
            ) from error
        joined[EVENT_TIMESTAMP] = pd.to_datetime(joined[EVENT_TIMESTAMP], utc=True)
        joined = joined[[*view_keys, EVENT_TIMESTAMP, *features]]
        result = result.merge(joined, on=[*view_keys, EVENT_TIMESTAMP], how="left")
    return result


@dataclass
class OnlineUserFeatures:
    """Online features for one batch of users, in request order.

    Attributes:
        user_ids: The requested raw user ids.
        values: Feature name to one value per user; ``None`` where the value is
            missing or older than its view's TTL.
        status: Per user, ``"present"``, ``"unknown"`` (no profile in the online
            store) or ``"expired"`` (profile older than the TTL).
    """

    user_ids: list[str]
    values: dict[str, list]
    status: list[str]

    def cold_users(self) -> list[str]:
        """Return the users without a usable profile, who need a cold-start ranking."""
        return [
            user
            for user, status in zip(self.user_ids, self.status, strict=True)
            if status != PRESENT
        ]


class OnlineFeatureReader:
    """Reads the serving features of request batches from the online store.

    Resolves the feature service once, so each batch costs one
    ``get_online_features`` call. ``cold_starts`` counts users read without a
    usable profile, by reason, for the server's metrics.
    """

    def __init__(self, store: FeatureStore, service: str = SERVING_SERVICE):
        self.store = store
        self.service = _service(store, service)
        views = _service_views(store, self.service)
        # Every feature of a view shares its row, so presence and age are checked
        # once per view, on the view's first feature.
        self._view_features = {view.name: features for view, features in views}
        self._view_ttl = {
            view.name: view.ttl.total_seconds()
            for view, _ in views
            if view.ttl and view.ttl > timedelta(0)
        }
        if PROFILE_VIEW not in self._view_features:
            raise FeatureStoreError(
                f"feature service {service!r} has no {PROFILE_VIEW!r} features, so "
                "it cannot tell a known user from an unknown one: add the view to "
                "the service in definitions.py"
            )
        self.cold_starts: Counter[str] = Counter()

    def read_users(
        self, user_ids: Sequence[str], now: datetime | None = None
    ) -> OnlineUserFeatures:
        """Read the serving features of ``user_ids`` in one online request.

        A value older than its view's TTL at ``now`` (default: the clock) counts
        as missing.

        Raises:
            FeatureStoreError: A user id is not a ``str``.
        """
        user_ids = list(user_ids)
        check_entity_ids(user_ids, USER_KEY)
        now_seconds = (now or datetime.now(UTC)).timestamp()
        response = self.store.get_online_features(
            features=self.service, entity_rows={USER_KEY: user_ids}
        )

        # Drop values whose event timestamp is older than the TTL, because Feast's
        # online read returns whatever was materialised, however old.
        records = response.to_dict()
        positions = {
            name: index
            for index, name in enumerate(response.proto.metadata.feature_names.val)
        }
        values: dict[str, list] = {}
        present: dict[str, np.ndarray] = {}
        fresh: dict[str, np.ndarray] = {}
        for view, features in self._view_features.items():
            vector = response.proto.results[positions[features[0]]]
            present[view] = _found(vector)
            fresh[view] = present[view]
            if view in self._view_ttl:
                stamps = np.fromiter(
                    (stamp.seconds for stamp in vector.event_timestamps),
                    dtype=np.float64,
                    count=len(user_ids),
                )
                fresh[view] = fresh[view] & (
                    now_seconds - stamps <= self._view_ttl[view]
                )
            for name in features:
                values[name] = [
                    value if ok else None
                    for value, ok in zip(records[name], fresh[view], strict=True)
                ]

        # The profile view decides: found and fresh is present, found but too old
        # is expired, not found is unknown.
        status = []
        for is_fresh, is_present in zip(
            fresh[PROFILE_VIEW], present[PROFILE_VIEW], strict=True
        ):
            if is_fresh:
                status.append(PRESENT)
            elif is_present:
                status.append(EXPIRED)
            else:
                status.append(UNKNOWN)
        for reason in (UNKNOWN, EXPIRED):
            count = status.count(reason)
            if count:
                self.cold_starts[reason] += count
                log.debug("features: %d of %d users %s", count, len(status), reason)
        return OnlineUserFeatures(user_ids=user_ids, values=values, status=status)


def read_online_user_features(
    store: FeatureStore,
    user_ids: Sequence[str],
    now: datetime | None = None,
    service: str = SERVING_SERVICE,
) -> OnlineUserFeatures:
    """Read the serving features of ``user_ids`` in one online request.

    Convenience wrapper around ``OnlineFeatureReader``; a server that reads many
    batches keeps one reader instead, which resolves the service only once.
    """
    return OnlineFeatureReader(store, service).read_users(user_ids, now)


def popular_items(
    store: FeatureStore,
    item_ids: Sequence[str],
    k: int,
    now: datetime | None = None,
) -> list[str]:
    """Rank ``item_ids`` by ratings in the trailing 7 days, for cold-start users.

    An item without a fresh popularity row counts as unrated. Ties keep the order
    of ``item_ids``.

    Raises:
        FeatureStoreError: An item id is not a ``str``.
    """
    item_ids = list(item_ids)
    check_entity_ids(item_ids, ITEM_KEY)
    response = store.get_online_features(
        features=[POPULARITY_FEATURE], entity_rows={ITEM_KEY: item_ids}
    )
    view = store.get_feature_view(POPULARITY_FEATURE.split(":")[0])
    name = POPULARITY_FEATURE.split(":")[1]
    index = list(response.proto.metadata.feature_names.val).index(name)
    vector = response.proto.results[index]
    counts = response.to_dict()[name]
    found = _found(vector)
    now_seconds = (now or datetime.now(UTC)).timestamp()
    scores = np.zeros(len(item_ids))
    for position, (count, stamp) in enumerate(
        zip(counts, vector.event_timestamps, strict=True)
    ):
        age = now_seconds - stamp.seconds
        fresh = not view.ttl or age <= view.ttl.total_seconds()
        if found[position] and fresh:
            scores[position] = count
    order = np.argsort(-scores, kind="stable")[:k]
    return [item_ids[position] for position in order]
