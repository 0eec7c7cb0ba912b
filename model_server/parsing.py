"""Request parsing and response encoding for the model server's wire formats.

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

v2 (``POST /v2/models/<name>/infer``): a ``user_id`` input (BYTES or an integer
type, shape ``[B]`` or ``[B, 1]``), an optional ``exclude`` input (BYTES, shape
``[B, M]``, padded with empty strings) and an optional request parameter ``k``.
Outputs are ``items`` (BYTES ``[B, K]``), ``scores`` (FP32 ``[B, K]``),
``version`` (BYTES ``[B]``) and ``cold_start`` (BOOL ``[B]``).

Feedback (``POST /v1/models/<name>/feedback``): one click event
``{"userId", "itemId", "version"}`` or ``{"events": [event, ...]}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ._kserve import InferRequest
from .errors import (
    InvalidFieldError,
    MalformedBodyError,
    MissingFieldError,
    RequestTooLargeError,
    UnknownItemError,
)

_INSTANCE_KEYS = ("userId", "k", "exclude")
_EVENT_KEYS = ("userId", "itemId", "version")
_V2_INPUTS = ("user_id", "exclude")
_V2_USER_DATATYPES = ("BYTES", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16")
_V2_USER_DATATYPES += ("UINT32", "UINT64")


class Catalogue:
    """Raw user and item ids of a trained model and their dense indices."""

    def __init__(self, user_ids: Sequence[Any], item_ids: Sequence[Any]) -> None:
        self.user_ids = [str(user) for user in user_ids]
        self.item_ids = np.asarray([str(item) for item in item_ids], dtype=object)
        self.user_index = {user: index for index, user in enumerate(self.user_ids)}
        self.item_index = {item: index for index, item in enumerate(self.item_ids)}

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def item_index_of(self, raw_id: Any, field: str) -> int:
        """Map a raw item id to its index; raise :class:`UnknownItemError` if absent."""
        item = _raw_id(raw_id, field, "an item id")
        index = self.item_index.get(item)
        if index is None:
            raise UnknownItemError(
                f"{field}: item id {item!r} is not in the model's catalogue of "
                f"{self.n_items} items; send ids from the training data",
                field,
            )
        return index


@dataclass(frozen=True)
class RequestLimits:
    """Bounds a request must respect."""

    n_items: int
    default_k: int = 10
    max_users: int = 100
    max_events: int = 1000


@dataclass(frozen=True)
class UserRequest:
    """One user to recommend for."""

    user_id: str
    k: int
    exclude: tuple[int, ...] = ()


@dataclass(frozen=True)
class RecommendRequest:
    """A parsed recommendation request, in the protocol it arrived in."""

    protocol: str
    users: list[UserRequest]
    request_id: str | None = None
    binary_outputs: bool = False


@dataclass(frozen=True)
class ClickEvent:
    """A user clicked an item on a slate produced by ``version``.

    ``field`` is the event's path in the request (``events[3]``, or empty for a
    body that is one event), for error messages.
    """

    user_id: str
    item: int
    version: str
    field: str = ""


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
            f"{_json_type(body)}",
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
            f"instances must be a list, got {_json_type(instances)}", "instances"
        )
    if not instances:
        raise InvalidFieldError(
            "instances is empty; name at least one user", "instances"
        )
    _check_user_count(len(instances), limits, "instances")

    default_k = limits.default_k
    if body.get("k") is not None:
        default_k = _parse_k(body["k"], "k", limits)
    users = [
        _parse_instance(
            instance, f"instances[{position}]", default_k, limits, catalogue
        )
        for position, instance in enumerate(instances)
    ]
    return RecommendRequest("v1", users)


def parse_v2(
    request: InferRequest, limits: RequestLimits, catalogue: Catalogue
) -> RecommendRequest:
    """Parse a v2 (open inference protocol) request into a request."""
    inputs = {infer_input.name: infer_input for infer_input in request.inputs}
    unknown = sorted(set(inputs) - set(_V2_INPUTS))
    if unknown:
        raise InvalidFieldError(
            f"inputs has unknown tensors {unknown}; allowed: {list(_V2_INPUTS)}",
            "inputs",
        )
    if "user_id" not in inputs:
        raise MissingFieldError(
            "inputs.user_id is missing; send the raw user ids as a tensor "
            '{"name": "user_id", "datatype": "BYTES", "shape": [B], "data": [...]}',
            "inputs.user_id",
        )

    # User ids: a vector, or a column of shape [B, 1].
    user_input = inputs["user_id"]
    field = "inputs.user_id"
    if user_input.datatype not in _V2_USER_DATATYPES:
        raise InvalidFieldError(
            f"{field}.datatype is {user_input.datatype!r}; use BYTES or an integer "
            "type",
            f"{field}.datatype",
        )
    shape = _tensor_shape(user_input.shape, field)
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise InvalidFieldError(
            f"{field}.shape is {list(shape)}; use [B] or [B, 1]", f"{field}.shape"
        )
    user_values = _tensor_values(user_input, shape, field)
    if not user_values:
        raise InvalidFieldError(f"{field} is empty; name at least one user", field)
    _check_user_count(len(user_values), limits, field)

    excludes = _parse_v2_exclude(inputs.get("exclude"), len(user_values), catalogue)

    parameters = request.parameters or {}
    k = limits.default_k
    if parameters.get("k") is not None:
        k = _parse_k(parameters["k"], "parameters.k", limits)
    users = []
    for position, value in enumerate(user_values):
        user_id = _raw_id(value, f"{field}.data[{position}]", "a user id")
        users.append(UserRequest(user_id, k, excludes[position]))
    return RecommendRequest(
        "v2",
        users,
        request_id=request.id,
        binary_outputs=bool(request.use_binary_outputs),
    )


def parse_feedback(
    body: Any, limits: RequestLimits, catalogue: Catalogue
) -> list[ClickEvent]:
    """Parse a feedback body into click events; the caller checks the versions."""
    if isinstance(body, bytes | str):
        body = parse_json_body(body)
    if not isinstance(body, Mapping):
        raise InvalidFieldError(
            'feedback must be a JSON object: {"userId", "itemId", "version"} or '
            f'{{"events": [...]}}, got {_json_type(body)}',
            "body",
        )
    if "events" not in body:
        return [_parse_event(body, "", catalogue)]
    events = body["events"]
    if not isinstance(events, list) or not events:
        raise InvalidFieldError(
            "events must be a non-empty list of click events, got "
            f"{_json_type(events)}",
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
        return UserRequest(_raw_id(instance, field, "a user id"), default_k)
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
    user_id = _raw_id(instance["userId"], f"{field}.userId", "a user id")
    k = default_k
    if instance.get("k") is not None:
        k = _parse_k(instance["k"], f"{field}.k", limits)
    exclude: tuple[int, ...] = ()
    if instance.get("exclude") is not None:
        exclude = _parse_exclude(instance["exclude"], f"{field}.exclude", catalogue)
    return UserRequest(user_id, k, exclude)


def _parse_exclude(value: Any, field: str, catalogue: Catalogue) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise InvalidFieldError(
            f"{field} must be a list of item ids, got {_json_type(value)}", field
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


def _parse_v2_exclude(
    exclude_input: Any, n_users: int, catalogue: Catalogue
) -> list[tuple[int, ...]]:
    if exclude_input is None:
        return [()] * n_users
    field = "inputs.exclude"
    if exclude_input.datatype != "BYTES":
        raise InvalidFieldError(
            f"{field}.datatype is {exclude_input.datatype!r}; use BYTES with raw "
            "item ids, padded with empty strings",
            f"{field}.datatype",
        )
    shape = _tensor_shape(exclude_input.shape, field)
    if len(shape) != 2 or shape[0] != n_users:
        raise InvalidFieldError(
            f"{field}.shape is {list(shape)}; use [{n_users}, M], one row per user",
            f"{field}.shape",
        )
    values = _tensor_values(exclude_input, shape, field)
    width = shape[1]
    excludes = []
    for row in range(n_users):
        indices = []
        for column in range(width):
            position = row * width + column
            value = values[position]
            if value == "":
                continue
            indices.append(catalogue.item_index_of(value, f"{field}.data[{position}]"))
        excludes.append(tuple(indices))
    return excludes


def _parse_event(event: Any, prefix: str, catalogue: Catalogue) -> ClickEvent:
    where = prefix or "the feedback body"
    if not isinstance(event, Mapping):
        raise InvalidFieldError(
            f"{where} must be an object with {list(_EVENT_KEYS)}, got "
            f"{_json_type(event)}",
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
    user_id = _raw_id(event["userId"], _join(prefix, "userId"), "a user id")
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


def _parse_k(value: Any, field: str, limits: RequestLimits) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidFieldError(f"{field} must be an integer, got {value!r}", field)
    if not 1 <= value <= limits.n_items:
        raise InvalidFieldError(
            f"{field} is {value}; it must lie in 1..{limits.n_items}, the catalogue "
            "size",
            field,
        )
    return value


def _check_user_count(count: int, limits: RequestLimits, field: str) -> None:
    if count > limits.max_users:
        raise RequestTooLargeError(
            f"{field} names {count} users, more than the limit of "
            f"{limits.max_users} per request; split them into several requests",
            field,
        )


def _raw_id(value: Any, field: str, description: str) -> str:
    """Normalise a raw id sent as a string or an integer to its string form."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, np.integer):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidFieldError(
            f"{field} must be {description} (a string or an integer), got {value!r}",
            field,
        )
    text = str(value)
    if not text:
        raise InvalidFieldError(
            f"{field} is an empty string; send {description}", field
        )
    return text


def _tensor_shape(shape: Any, field: str) -> tuple[int, ...]:
    if not isinstance(shape, list | tuple) or not all(
        isinstance(size, int) and not isinstance(size, bool) and size >= 0
        for size in shape
    ):
        raise InvalidFieldError(
            f"{field}.shape must be a list of non-negative integers, got {shape!r}",
            f"{field}.shape",
        )
    return tuple(shape)


def _tensor_values(infer_input: Any, shape: tuple[int, ...], field: str) -> list[Any]:
    """Return a tensor's elements in row-major order, checked against its shape."""
    # Without data, the elements arrived as raw bytes (binary tensor extension).
    data = infer_input.data
    values = infer_input.as_numpy().ravel().tolist() if data is None else _flatten(data)
    expected = math.prod(shape)
    if len(values) != expected:
        raise InvalidFieldError(
            f"{field}.data has {len(values)} elements but the shape {list(shape)} "
            f"needs {expected}",
            f"{field}.data",
        )
    return values


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    values: list[Any] = []
    for element in data:
        if isinstance(element, list):
            values.extend(_flatten(element))
        else:
            values.append(element)
    return values


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
