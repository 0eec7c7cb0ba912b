"""Parsed requests, and the field checks that the v1, v2 and feedback parsers share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidFieldError, RequestTooLargeError, UnknownItemError


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

    def item_index_of(self, value: Any, field: str) -> int:
        """Map a raw item id to its index; raise :class:`UnknownItemError` if absent."""
        item = raw_id(value, field, "an item id")
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


def parse_k(value: Any, field: str, limits: RequestLimits) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidFieldError(f"{field} must be an integer, got {value!r}", field)
    if not 1 <= value <= limits.n_items:
        raise InvalidFieldError(
            f"{field} is {value}; it must lie in 1..{limits.n_items}, the catalogue "
            "size",
            field,
        )
    return value


def check_user_count(count: int, limits: RequestLimits, field: str) -> None:
    if count > limits.max_users:
        raise RequestTooLargeError(
            f"{field} names {count} users, more than the limit of "
            f"{limits.max_users} per request; split them into several requests",
            field,
        )


def raw_id(value: Any, field: str, description: str) -> str:
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


def json_type(value: Any) -> str:
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
