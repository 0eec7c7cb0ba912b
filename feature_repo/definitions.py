"""Feast definitions for adaptrec: entities, parquet sources, feature views, services.

`adaptrec features build` computes the parquet files under data/ from the ratings and
the models, applies these definitions and materialises them into the online store.
The tuner reads them point-in-time through the ``training`` service, and the model
server reads the latest values through the ``serving`` service.

Every source row carries ``event_timestamp``, the moment its value became known:
the end of the UTC day whose ratings it summarises. A training example stamped
during a day therefore gets the previous day's snapshot, never one that already
counts the example's own rating.

This file imports only Feast, so ``feast apply`` in this folder works without
adaptrec installed.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Bool, Float32, Int64, String

# Timestamp column shared by every source.
EVENT_TIMESTAMP = "event_timestamp"

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A rater, keyed by the raw user id from the ratings file.",
)

item = Entity(
    name="item",
    join_keys=["item_id"],
    value_type=ValueType.STRING,
    description="A catalogue item, keyed by the raw item id from the ratings file.",
)

user_profile_source = FileSource(
    name="user_profile_source",
    path="data/user_profile.parquet",
    timestamp_field=EVENT_TIMESTAMP,
    description="One row per user and UTC day on which the user rated something.",
)

item_content_source = FileSource(
    name="item_content_source",
    path="data/item_content.parquet",
    timestamp_field=EVENT_TIMESTAMP,
    description="One row per item, stamped at the start of its first rated day.",
)

item_popularity_source = FileSource(
    name="item_popularity_source",
    path="data/item_popularity.parquet",
    timestamp_field=EVENT_TIMESTAMP,
    description="One row per item and UTC day whose trailing 7-day window has "
    "at least one rating of the item.",
)

content_landscape_source = FileSource(
    name="content_landscape_source",
    path="data/content_landscape.parquet",
    timestamp_field=EVENT_TIMESTAMP,
    description="One row per UTC day whose trailing 7-day window has a rating.",
)

user_profile = FeatureView(
    name="user_profile",
    entities=[user],
    # A profile stays correct until the user rates again, but tastes drift: after
    # 90 days without a rating the model server treats the user as cold rather
    # than rank with a profile from another season.
    ttl=timedelta(days=90),
    schema=[
        Field(name="user_id", dtype=String),
        Field(
            name="topic_mean",
            dtype=Array(Float32),
            description="NVDM posterior mean of the user's topic vector (mu).",
        ),
        Field(
            name="topic_std",
            dtype=Array(Float32),
            description="NVDM posterior standard deviation (sigma).",
        ),
        Field(
            name="recent_item_ids",
            dtype=Array(String),
            description="Raw ids of the last rated items, most recent first.",
        ),
        Field(name="n_ratings", dtype=Int64, description="Ratings so far."),
        Field(
            name="n_positives",
            dtype=Int64,
            description="Ratings so far at or above the positive threshold.",
        ),
        Field(
            name="n_ratings_30d",
            dtype=Int64,
            description="Ratings in the 30 days up to the snapshot.",
        ),
        Field(
            name="active_days",
            dtype=Int64,
            description="UTC days with at least one rating so far.",
        ),
    ],
    source=user_profile_source,
    online=True,
)

item_content = FeatureView(
    name="item_content",
    entities=[item],
    # An item's text and knowledge-graph links do not go stale, so the rows never
    # expire (a TTL of 0 means no limit in Feast). A rebuild of the models rewrites
    # every row and `adaptrec features build` re-materialises the view.
    ttl=timedelta(0),
    schema=[
        Field(name="item_id", dtype=String),
        Field(
            name="content_embedding",
            dtype=Array(Float32),
            description="Sentence-transformer embedding of title, year and genres.",
        ),
        Field(
            name="kg_embedding",
            dtype=Array(Float32),
            description="Node2Vec embedding of the item's knowledge-graph entity; "
            "zeros when has_kg is false.",
        ),
        Field(
            name="has_kg",
            dtype=Bool,
            description="Whether the item is linked to a knowledge-graph entity.",
        ),
        Field(
            name="topic_vector",
            dtype=Array(Float32),
            description="The item's topic loadings: its column of NVDM decoder "
            "weights.",
        ),
    ],
    source=item_content_source,
    online=True,
)

item_popularity = FeatureView(
    name="item_popularity",
    entities=[item],
    # A row exists for every day whose trailing window is non-empty, so a fresh
    # value appears daily while an item is being rated. Two days tolerates one late
    # daily build. An older value means the item has had no rating for at least a
    # week, so a reader treats it as missing (zero popularity) and does not reuse it.
    ttl=timedelta(days=2),
    schema=[
        Field(name="item_id", dtype=String),
        Field(
            name="ratings_7d",
            dtype=Int64,
            description="Ratings of the item in the trailing 7 days.",
        ),
        Field(
            name="positives_7d",
            dtype=Int64,
            description="Positive ratings of the item in the trailing 7 days.",
        ),
        Field(
            name="mean_rating_7d",
            dtype=Float32,
            description="Mean rating of the item in the trailing 7 days.",
        ),
        Field(
            name="share_7d",
            dtype=Float32,
            description="The item's share of all catalogue ratings in the window.",
        ),
    ],
    source=item_popularity_source,
    online=True,
)

content_landscape = FeatureView(
    name="content_landscape",
    # No entities: one catalogue-wide row per day, joined to every request.
    entities=[],
    # Same daily cadence and reasoning as item_popularity.
    ttl=timedelta(days=2),
    schema=[
        Field(
            name="topic_distribution",
            dtype=Array(Float32),
            description="Topic distribution of the trailing 7 days' ratings: "
            "the rating-weighted mean of each item's softmax over its topic "
            "loadings (sums to 1).",
        ),
        Field(
            name="landscape_ratings_7d",
            dtype=Int64,
            description="Catalogue-wide ratings in the trailing 7 days.",
        ),
        Field(
            name="active_users_7d",
            dtype=Int64,
            description="Users with a rating in the trailing 7 days.",
        ),
        Field(
            name="active_items_7d",
            dtype=Int64,
            description="Items with a rating in the trailing 7 days.",
        ),
        Field(
            name="popularity_entropy",
            dtype=Float32,
            description="Entropy of the items' rating shares divided by its "
            "maximum, log(active items): 1 is uniform, near 0 is one hit.",
        ),
        Field(
            name="top_decile_share",
            dtype=Float32,
            description="Share of the window's ratings that went to the most "
            "rated 10% of the catalogue.",
        ),
    ],
    source=content_landscape_source,
    online=True,
)

training = FeatureService(
    name="training",
    features=[user_profile, item_content, item_popularity, content_landscape],
    description="Point-in-time features for (user, item, event_timestamp) "
    "training examples.",
)

serving = FeatureService(
    name="serving",
    features=[user_profile, content_landscape],
    description="Latest user profile and content landscape for one request batch; "
    "item features come from the model artefacts or item_popularity.",
)
