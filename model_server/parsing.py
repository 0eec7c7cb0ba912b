"""Parsing of v1 recommendation requests and of click feedback.

v1 (``POST /v1/models/<name>:predict``)::

    {"instances": ["196", 186, {"userId": "22", "k": 5, "exclude": ["50"]}],
     "k": 10}

An instance is a raw user id (string or integer) or an object with ``userId``
and optional ``k`` and ``exclude`` (raw item ids). The top-level ``k`` is the
default for instances without one. The response has one prediction per instance,
in order::

    {"predictions": [{"userId": "196", "items": ["242", ...],
                      "scores": [1.7, ...], "version": "3f9c0a1b2c4d",
                      "coldStart": false}, ...]}

Feedback (``POST /v1/models/<name>/feedback``): one click event
``{"userId", "itemId", "version"}`` or ``{"events": [event, ...]}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from .errors import (
    InvalidFieldError,
    MalformedBodyError,
    MissingFieldError,
    RequestTooLargeError,
)
from .request_types import (
    Catalogue,
    ClickEvent,
    RecommendRequest,
    RequestLimits,
    UserRequest,
    check_user_count,
    json_type,
    parse_k,
    raw_id,
)

_INSTANCE_KEYS = ("userId", "k", "exclude")


_EVENT_KEYS = ("userId", "itemId", "version")


def parse_json_body(body: bytes | str) -> Any:
    """Decode a raw request body; raise MalformedBodyError unless it is JSON."""
    if not body or not body.strip():
        raise MalformedBodyError(
            'request body is empty; send a JSON object such as {"instances": ["196"]}',
            "body",
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise MalformedBodyError(
            f"request body is not valid JSON ({error}); send a JSON object such as "
            '{"instances": ["196"]}',
            "body",
        ) from None


def parse_v1(
    body: Any, limits: RequestLimits, catalogue: Catalogue
) -> RecommendRequest:
    """Parse a v1 predict body (already decoded from JSON) into a request."""
    if isinstance(body, bytes | str):
        body = parse_json_body(body)
    if not isinstance(body, Mapping):
        raise InvalidFieldError(
            "request body must be a JSON object with an 'instances' list, got "
            f"{json_type(body)}",
            "body",
        )
    if "instances" not in body:
        raise MissingFieldError(
            'instances is missing; send {"instances": [user ids or objects with '
            '"userId"]}',
            "instances",
        )
    instances = body["instances"]
    if instances is None:
        raise InvalidFieldError(
            "instances is null; send a list of user ids or objects with userId",
            "instances",
        )
    if not isinstance(instances, list):
        raise InvalidFieldError(
            f"instances must be a list, got {json_type(instances)}", "instances"
        )
    if not instances:
        raise InvalidFieldError(
            "instances is empty; name at least one user", "instances"
        )
    check_user_count(len(instances), limits, "instances")

    default_k = limits.default_k
    if body.get("k") is not None:
        default_k = parse_k(body["k"], "k", limits)
    users = [
        _parse_instance(
            instance, f"instances[{position}]", default_k, limits, catalogue
        )
        for position, instance in enumerate(instances)
    ]
    return RecommendRequest("v1", users)


def parse_feedback(
    body: Any, limits: RequestLimits, catalogue: Catalogue
) -> list[ClickEvent]:
    """Parse a feedback body into click events; the caller checks the versions."""
    if isinstance(body, bytes | str):
        body = parse_json_body(body)
    if not isinstance(body, Mapping):
        raise InvalidFieldError(
            'feedback must be a JSON object: {"userId", "itemId", "version"} or '
            f'{{"events": [...]}}, got {json_type(body)}',
            "body",
        )
    if "events" not in body:
        return [_parse_event(body, "", catalogue)]
    events = body["events"]
    if not isinstance(events, list) or not events:
        raise InvalidFieldError(
            f"events must be a non-empty list of click events, got {json_type(events)}",
            "events",
        )
    if len(events) > limits.max_events:
        raise RequestTooLargeError(
            f"events has {len(events)} entries, more than the limit of "
            f"{limits.max_events}; split them into several requests",
            "events",
        )
    return [
        _parse_event(event, f"events[{position}]", catalogue)
        for position, event in enumerate(events)
    ]


def _parse_instance(
    instance: Any,
    field: str,
    default_k: int,
    limits: RequestLimits,
    catalogue: Catalogue,
) -> UserRequest:
    if not isinstance(instance, Mapping):
        return UserRequest(raw_id(instance, field, "a user id"), default_k)
    unknown = sorted(set(instance) - set(_INSTANCE_KEYS))
    if unknown:
        raise InvalidFieldError(
            f"{field} has unknown keys {unknown}; allowed: {list(_INSTANCE_KEYS)}",
            field,
        )
    if instance.get("userId") is None:
        raise MissingFieldError(
            f"{field}.userId is missing; each instance is a user id or an object "
            'with "userId"',
            f"{field}.userId",
        )
    user_id = raw_id(instance["userId"], f"{field}.userId", "a user id")
    k = default_k
    if instance.get("k") is not None:
        k = parse_k(instance["k"], f"{field}.k", limits)
    exclude: tuple[int, ...] = ()
    if instance.get("exclude") is not None:
        exclude = _parse_exclude(instance["exclude"], f"{field}.exclude", catalogue)
    return UserRequest(user_id, k, exclude)


def _parse_exclude(value: Any, field: str, catalogue: Catalogue) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise InvalidFieldError(
            f"{field} must be a list of item ids, got {json_type(value)}", field
        )
    if len(value) > catalogue.n_items:
        raise InvalidFieldError(
            f"{field} has {len(value)} ids, more than the {catalogue.n_items} items "
            "in the catalogue",
            field,
        )
    return tuple(
        catalogue.item_index_of(item, f"{field}[{position}]")
        for position, item in enumerate(value)
    )


def _parse_event(event: Any, prefix: str, catalogue: Catalogue) -> ClickEvent:
    where = prefix or "the feedback body"
    if not isinstance(event, Mapping):
        raise InvalidFieldError(
            f"{where} must be an object with {list(_EVENT_KEYS)}, got "
            f"{json_type(event)}",
            prefix or "body",
        )
    unknown = sorted(set(event) - set(_EVENT_KEYS))
    if unknown:
        raise InvalidFieldError(
            f"{where} has unknown keys {unknown}; allowed: {list(_EVENT_KEYS)}",
            prefix or "body",
        )
    for key in _EVENT_KEYS:
        if event.get(key) is None:
            raise MissingFieldError(
                f"{_join(prefix, key)} is missing; a click event names "
                f"{list(_EVENT_KEYS)}",
                _join(prefix, key),
            )
    user_id = raw_id(event["userId"], _join(prefix, "userId"), "a user id")
    item = catalogue.item_index_of(event["itemId"], _join(prefix, "itemId"))
    version = event["version"]
    if not isinstance(version, str) or not version:
        raise InvalidFieldError(
            f"{_join(prefix, 'version')} must be the non-empty version string from "
            f"the recommendation response, got {version!r}",
            _join(prefix, "version"),
        )
    return ClickEvent(user_id, item, version, prefix)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key
