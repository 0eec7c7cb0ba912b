"""Parsing of v2 (open inference protocol) recommendation requests.

``POST /v2/models/<name>/infer`` takes a ``user_id`` input (BYTES or an integer
type, shape ``[B]`` or ``[B, 1]``), an optional ``exclude`` input (BYTES, shape
``[B, M]``, padded with empty strings) and an optional request parameter ``k``.
The response's outputs are ``items`` (BYTES ``[B, K]``), ``scores`` (FP32
``[B, K]``), ``version`` (BYTES ``[B]``) and ``cold_start`` (BOOL ``[B]``).
"""

from __future__ import annotations

import math
from typing import Any

from ._kserve import InferRequest
from .errors import InvalidFieldError, MissingFieldError
from .request_types import (
    Catalogue,
    RecommendRequest,
    RequestLimits,
    UserRequest,
    check_user_count,
    parse_k,
    raw_id,
)

_V2_INPUTS = ("user_id", "exclude")


_V2_USER_DATATYPES = (
    "BYTES",
    *("INT8", "INT16", "INT32", "INT64"),
    *("UINT8", "UINT16", "UINT32", "UINT64"),
)


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
    check_user_count(len(user_values), limits, field)

    excludes = _parse_v2_exclude(inputs.get("exclude"), len(user_values), catalogue)

    parameters = request.parameters or {}
    k = limits.default_k
    if parameters.get("k") is not None:
        k = parse_k(parameters["k"], "parameters.k", limits)
    users = []
    for position, value in enumerate(user_values):
        user_id = raw_id(value, f"{field}.data[{position}]", "a user id")
        users.append(UserRequest(user_id, k, excludes[position]))
    return RecommendRequest(
        "v2",
        users,
        request_id=request.id,
        binary_outputs=bool(request.use_binary_outputs),
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
