"""Open the Feast feature repository and check its definitions and parquet sources.

The build, the trainer and the model server all open the repository through
``open_store`` so that the SQLite and Redis variants resolve the same way.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from feast import Entity, FeatureService, FeatureStore, FeatureView
from feast.data_source import DataSource
from feast.feature_view import DUMMY_ENTITY_ID
from feast.infra.offline_stores.file_source import FileSource
from feast.repo_config import load_repo_config

from adaptrec.features.errors import FeatureStoreError

log = logging.getLogger(__name__)

ONLINE_STORES = ("sqlite", "redis")
CONFIG_FILES = {"sqlite": "feature_store.yaml", "redis": "feature_store.redis.yaml"}
DEFINITIONS_FILE = "definitions.py"
DEFAULT_REDIS_URL = "127.0.0.1:6379"

# Feast's own form ("host:port" plus ",key=value" options) or a redis:// URL.
_FEAST_REDIS = re.compile(
    r"^(?P<host>[^:,/\s]+):(?P<port>\d+)(?P<options>(,[^,=\s]+=[^,\s]*)*)$"
)
_REDIS_URL = re.compile(
    r"^redis://(?:(?P<password>:[^@]*)@)?(?P<host>[^:/\s]+)(?::(?P<port>\d+))?"
    r"(?:/(?P<db>\d+))?$"
)


@dataclass
class Definitions:
    """The Feast objects declared in a repository's definitions file."""

    entities: list[Entity] = field(default_factory=list)
    sources: list[DataSource] = field(default_factory=list)
    feature_views: dict[str, FeatureView] = field(default_factory=dict)
    feature_services: dict[str, FeatureService] = field(default_factory=dict)

    def objects(self) -> list:
        """Return every object in the order ``FeatureStore.apply`` accepts them."""
        return [
            *self.entities,
            *self.sources,
            *self.feature_views.values(),
            *self.feature_services.values(),
        ]


def redis_connection_string(url: str) -> str:
    """Convert ``url`` to Feast's Redis connection string ``host:port[,db=N]``.

    Accepts Feast's own form unchanged and ``redis://[:password@]host[:port][/db]``.

    Raises:
        FeatureStoreError: ``url`` is in neither form.
    """
    url = url.strip()
    if _FEAST_REDIS.match(url):
        return url
    match = _REDIS_URL.match(url)
    if match is None:
        raise FeatureStoreError(
            f"invalid Redis URL {url!r}: expected host:port (Feast's form, such as "
            f"{DEFAULT_REDIS_URL} or 127.0.0.1:6379,db=1) or redis://host:port/db"
        )
    parts = [f"{match['host']}:{match['port'] or 6379}"]
    if match["db"]:
        parts.append(f"db={match['db']}")
    if match["password"]:
        parts.append(f"password={match['password'][1:]}")
    return ",".join(parts)


def open_store(
    repo_path: str | Path,
    online_store: str = "sqlite",
    redis_url: str | None = None,
) -> FeatureStore:
    """Open the feature repository at ``repo_path`` with the chosen online store.

    ``online_store="redis"`` reads ``feature_store.redis.yaml``; ``redis_url``, when
    given, replaces its connection string.

    Raises:
        FeatureStoreError: The online store is unknown, or the repository or its
            configuration file is missing.
    """
    if online_store not in ONLINE_STORES:
        raise FeatureStoreError(
            f"unknown online store {online_store!r}: use one of "
            f"{', '.join(ONLINE_STORES)}"
        )
    repo = Path(repo_path).resolve()
    config_path = repo / CONFIG_FILES[online_store]
    if not config_path.is_file():
        raise FeatureStoreError(
            f"feature repository {repo} has no {config_path.name}: pass the path of "
            "the feature_repo/ folder (the one with feature_store.yaml)"
        )
    config = load_repo_config(repo, config_path)
    if online_store == "redis" and redis_url is not None:
        config.online_store.connection_string = redis_connection_string(redis_url)
    return FeatureStore(repo_path=str(repo), config=config)


def load_definitions(repo_path: str | Path) -> Definitions:
    """Import the repository's ``definitions.py`` and collect its Feast objects.

    The module is imported under a name derived from its path, so two repositories
    (a copy in a test, say) never share a cached module.

    Raises:
        FeatureStoreError: The file is missing or fails to import.
    """
    path = Path(repo_path).resolve() / DEFINITIONS_FILE
    if not path.is_file():
        raise FeatureStoreError(
            f"feature repository {path.parent} has no {DEFINITIONS_FILE}: pass the "
            "path of the feature_repo/ folder"
        )
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"_feature_repo_{digest}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise FeatureStoreError(
            f"failed to import feature definitions {path}: {error}; fix the file "
            "and run the build again"
        ) from error

    definitions = Definitions()
    for value in vars(module).values():
        if isinstance(value, Entity):
            definitions.entities.append(value)
        elif isinstance(value, FeatureView):
            definitions.feature_views[value.name] = value
            if value.batch_source is not None:
                definitions.sources.append(value.batch_source)
        elif isinstance(value, FeatureService):
            definitions.feature_services[value.name] = value
    return definitions


def source_path(store: FeatureStore, view: FeatureView) -> Path:
    """Return the absolute path of ``view``'s parquet source.

    Raises:
        FeatureStoreError: The view's source is not a parquet ``FileSource``.
    """
    source = view.batch_source
    if not isinstance(source, FileSource):
        raise FeatureStoreError(
            f"feature view {view.name!r} reads {type(source).__name__}, not a "
            "parquet FileSource: adaptrec builds parquet files only"
        )
    path = Path(source.path)
    if not path.is_absolute():
        path = Path(store.repo_path) / path
    return path


def join_keys(view: FeatureView) -> list[str]:
    """Return the entity columns of ``view``; an entity-less view has none.

    Feast gives a registered entity-less view a placeholder entity column, which
    no source contains.
    """
    return [
        column.name for column in view.entity_columns if column.name != DUMMY_ENTITY_ID
    ]


def required_columns(view: FeatureView) -> list[str]:
    """Return the columns ``view``'s source must contain: keys, timestamp, features."""
    columns = join_keys(view)
    if view.batch_source is not None:
        columns.append(view.batch_source.timestamp_field)
    columns.extend(feature.name for feature in view.features)
    return list(dict.fromkeys(columns))


def check_source(store: FeatureStore, view: FeatureView) -> None:
    """Check that ``view``'s parquet file is readable and has every column it needs.

    Reads only the file's footer, so it is cheap enough to run before every
    historical read.

    Raises:
        FeatureStoreError: The file is missing, unreadable, or lacks a column.
    """
    path = source_path(store, view)
    rebuild = "run `adaptrec features build` to rewrite it"
    if not path.is_file():
        raise FeatureStoreError(
            f"feature view {view.name!r}: source file {path} does not exist; {rebuild}"
        )
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as error:
        raise FeatureStoreError(
            f"feature view {view.name!r}: source file {path} is not a readable "
            f"parquet file ({error}); {rebuild}"
        ) from error
    missing = [
        column for column in required_columns(view) if column not in schema.names
    ]
    if missing:
        raise FeatureStoreError(
            f"feature view {view.name!r}: source file {path} has no column "
            f"{', '.join(repr(column) for column in missing)}; {rebuild}, or remove "
            "the field from the view in definitions.py"
        )
