"""Build the feature repository: write parquet sources, apply, materialise.

``adaptrec features build`` calls ``build_features``. Re-running it is safe. The
parquet files are rewritten whole and ``apply`` leaves unchanged definitions alone.
Materialisation covers only the time after the previous run's end date, except for
a view whose source content changed, which is materialised again from scratch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from feast import FeatureStore, FeatureView
from feast.errors import FeatureViewNotFoundException
from feast.feast_object import FeastObject

from adaptrec.data.dataset import Dataset
from adaptrec.features.compute import (
    EVENT_TIMESTAMP,
    FeatureInputs,
    compute_feature_frames,
)
from adaptrec.features.errors import FeatureStoreError
from adaptrec.features.store import (
    Definitions,
    check_source,
    load_definitions,
    open_store,
    required_columns,
    source_path,
)

log = logging.getLogger(__name__)


@dataclass
class ViewSummary:
    """Rows written and materialisation outcome of one feature view in one build."""

    name: str
    rows: int
    start: datetime
    end: datetime
    path: Path
    materialization: str


@dataclass
class BuildSummary:
    """Result of ``build_features``."""

    views: list[ViewSummary]
    end_date: datetime
    online_store: str

    def lines(self) -> list[str]:
        """Return one human-readable line per feature view."""
        return [
            f"{view.name}: {view.rows} rows, {view.start:%Y-%m-%d %H:%M} to "
            f"{view.end:%Y-%m-%d %H:%M} UTC, {view.materialization}"
            for view in self.views
        ]


def check_end_date(end_date: datetime | None, now: datetime) -> datetime | None:
    """Return ``end_date`` in UTC (naive means UTC), or ``None`` when not given.

    Raises:
        FeatureStoreError: ``end_date`` is later than ``now``.
    """
    if end_date is None:
        return None
    if end_date.tzinfo is None:
        end_date = end_date.replace(tzinfo=UTC)
    end_date = end_date.astimezone(UTC)
    if end_date > now:
        raise FeatureStoreError(
            f"materialisation end date {end_date.isoformat()} is in the future "
            f"(now is {now.isoformat(timespec='seconds')}): pass a date at or before "
            "now, or omit it to use the latest event timestamp in the data"
        )
    return end_date


def check_frames(frames: dict[str, pd.DataFrame], definitions: Definitions) -> None:
    """Check that every feature view has a frame with every column it declares.

    Raises:
        FeatureStoreError: A view has no frame, or its frame lacks a column.
    """
    for name, view in definitions.feature_views.items():
        if name not in frames:
            raise FeatureStoreError(
                f"feature view {name!r} in definitions.py has no feature pipeline "
                "in adaptrec.features.compute: remove the view or compute it"
            )
        missing = [c for c in required_columns(view) if c not in frames[name].columns]
        if missing:
            raise FeatureStoreError(
                f"feature view {name!r} declares column "
                f"{', '.join(repr(column) for column in missing)} but the feature "
                "pipeline does not compute it: remove the field from the view in "
                "definitions.py or add it to adaptrec.features.compute"
            )


def _write_parquet(frame: pd.DataFrame, path: Path) -> str:
    """Write ``frame`` to ``path`` atomically and return the file's SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    frame.to_parquet(partial, index=False)
    digest = hashlib.sha256(partial.read_bytes()).hexdigest()
    os.replace(partial, path)
    return digest


def _state_path(store: FeatureStore) -> Path:
    """Return the file recording the source digests that the registry reflects.

    It sits next to the registry because the registry, not the parquet files,
    records what each online store has materialised.
    """
    registry = Path(store.config.registry.path)
    if not registry.is_absolute():
        registry = Path(store.repo_path) / registry
    return registry.with_name(registry.name + ".sources.json")


def _read_state(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        log.warning(
            "features: ignoring unreadable build state %s (%s); every view will be "
            "materialised again",
            path,
            error,
        )
        return {}


def _registered_view(store: FeatureStore, name: str) -> FeatureView | None:
    try:
        return store.get_feature_view(name)
    except FeatureViewNotFoundException:
        return None


def _materialise(
    store: FeatureStore, view: FeatureView, start: datetime, end_date: datetime
) -> str:
    """Materialise ``view`` up to ``end_date`` and return what was done."""
    registered = _registered_view(store, view.name)
    last_end = registered.most_recent_end_time if registered is not None else None
    if start > end_date:
        return "nothing to materialise before the end date"
    if last_end is None:
        # First run: materialize_incremental would start at now - ttl, which skips
        # all history older than the TTL, so the first range is explicit.
        store.materialize(
            start_date=start, end_date=end_date, feature_views=[view.name]
        )
        return f"materialised {start:%Y-%m-%d} to {end_date:%Y-%m-%d %H:%M}"
    if end_date <= last_end:
        return f"online store up to date (materialised to {last_end:%Y-%m-%d %H:%M})"
    store.materialize_incremental(end_date=end_date, feature_views=[view.name])
    return f"materialised {last_end:%Y-%m-%d %H:%M} to {end_date:%Y-%m-%d %H:%M}"


def build_features(
    repo_path: str | Path,
    dataset: Dataset,
    inputs: FeatureInputs | Callable[[], FeatureInputs] | None = None,
    *,
    online_store: str = "sqlite",
    redis_url: str | None = None,
    end_date: datetime | None = None,
    now: datetime | None = None,
) -> BuildSummary:
    """Compute the features of ``dataset``, write them to the repository, materialise.

    Args:
        repo_path: The feature repository folder (feature_repo/).
        dataset: Ratings and item metadata.
        inputs: Model outputs to compute from, or a function that returns them,
            called once the repository and options are checked. ``None`` fits
            the quick models on ``dataset`` (see ``adaptrec.features.inputs``).
        online_store: ``"sqlite"`` or ``"redis"``.
        redis_url: Redis server for ``online_store="redis"``.
        end_date: Materialise events up to this time; defaults to the latest event.
        now: The current time, for tests; defaults to the clock.

    Raises:
        FeatureStoreError: Invalid definitions, inputs, end date or sources.
    """
    # Check the cheap arguments before the models are fitted.
    now = now or datetime.now(UTC)
    end_date = check_end_date(end_date, now)
    definitions = load_definitions(repo_path)
    store = open_store(repo_path, online_store, redis_url)
    if inputs is None:
        from adaptrec.features.inputs import inputs_from_models

        inputs = inputs_from_models(dataset)
    elif callable(inputs):
        inputs = inputs()

    # Compute the frames and check them against the definitions before writing.
    frames = compute_feature_frames(dataset, inputs)
    check_frames(frames, definitions)
    if end_date is None:
        latest_event = max(frame[EVENT_TIMESTAMP].max() for frame in frames.values())
        end_date = min(latest_event.to_pydatetime(), now)

    # Write the parquet sources and check that Feast can read them back.
    digests: dict[str, str] = {}
    for name, view in definitions.feature_views.items():
        columns = required_columns(view)
        digests[name] = _write_parquet(frames[name][columns], source_path(store, view))
        check_source(store, view)

    # Views whose source changed since the last build are dropped first, so their
    # online rows are rewritten even where the event timestamps are unchanged (the
    # Redis store skips a write whose timestamp is not newer than the stored one).
    state_path = _state_path(store)
    previous = _read_state(state_path)
    changed: list[FeastObject] = [
        view
        for name, view in definitions.feature_views.items()
        if previous.get(name) != digests[name]
        and _registered_view(store, name) is not None
    ]
    if changed:
        log.info(
            "features: sources changed for %s; materialising them again",
            ", ".join(view.name for view in changed),
        )
        store.apply([], objects_to_delete=changed, partial=False)
    store.apply(definitions.objects())

    # Materialise each view and record what the registry now reflects.
    summaries = []
    for name, view in definitions.feature_views.items():
        frame = frames[name]
        start = frame[EVENT_TIMESTAMP].min().to_pydatetime()
        outcome = _materialise(store, view, start, end_date)
        summary = ViewSummary(
            name=name,
            rows=len(frame),
            start=start,
            end=frame[EVENT_TIMESTAMP].max().to_pydatetime(),
            path=source_path(store, view),
            materialization=outcome,
        )
        summaries.append(summary)
        log.info(
            "features: %s: wrote %d rows (%s to %s) to %s; %s",
            name,
            summary.rows,
            summary.start.isoformat(),
            summary.end.isoformat(),
            summary.path,
            outcome,
        )
    state_path.write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n")
    return BuildSummary(views=summaries, end_date=end_date, online_store=online_store)
