"""Response encoding for the model server's v1 and v2 protocols."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np

from ._kserve import InferOutput, InferResponse
from .errors import ResponseEncodingError
from .request_types import RecommendRequest


@dataclass(frozen=True)
class Slate:
    """Top-K items recommended to one user, as raw item ids."""

    user_id: str
    items: list[str]
    scores: list[float]
    version: str
    cold_start: bool


def encode_v1(slates: Sequence[Slate]) -> dict[str, Any]:
    """Encode slates as a v1 response body.

    Slates already hold plain JSON types with finite scores (the model checks
    them when it builds a slate), so no :func:`to_json_value` pass is needed.
    """
    predictions = [
        {
            "userId": slate.user_id,
            "items": slate.items,
            "scores": slate.scores,
            "version": slate.version,
            "coldStart": slate.cold_start,
        }
        for slate in slates
    ]
    return {"predictions": predictions}


def encode_v2(
    slates: Sequence[Slate], model_name: str, request: RecommendRequest
) -> InferResponse:
    """Encode slates as a v2 response.

    Tensors are rectangular, so a slate shorter than the longest one (a user with
    fewer unseen items than ``k``) is padded with ``""`` items and NaN scores,
    which JSON carries as null.
    """
    width = max(len(slate.items) for slate in slates)
    items = np.full((len(slates), width), "", dtype=object)
    scores = np.full((len(slates), width), np.nan, dtype=np.float32)
    for row, slate in enumerate(slates):
        items[row, : len(slate.items)] = slate.items
        scores[row, : len(slate.scores)] = slate.scores
    versions = np.asarray([slate.version for slate in slates], dtype=object)
    cold_start = np.asarray([slate.cold_start for slate in slates], dtype=bool)
    outputs = [
        InferOutput("items", list(items.shape), "BYTES", items),
        InferOutput("scores", list(scores.shape), "FP32", scores),
        InferOutput("version", list(versions.shape), "BYTES", versions),
        InferOutput("cold_start", list(cold_start.shape), "BOOL", cold_start),
    ]
    return InferResponse(
        # The v2 response schema requires an id; echo the request's or make one.
        response_id=request.request_id or str(uuid.uuid4()),
        model_name=model_name,
        infer_outputs=outputs,
        use_binary_outputs=request.binary_outputs,
    )


def to_json_value(value: Any, path: str = "$") -> Any:
    """Convert ``value`` to plain JSON types, or raise naming the offending path.

    numpy scalars and arrays become Python numbers and lists, dates and datetimes
    become ISO 8601 strings. NaN and infinities raise
    :class:`ResponseEncodingError`, because JSON has no representation for them
    and writing null would hide a bug.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ResponseEncodingError(
                f"response value at {path} is {value}, which JSON cannot represent"
            )
        return value
    if isinstance(value, np.ndarray):
        return to_json_value(value.tolist(), path)
    if isinstance(value, np.generic):
        return to_json_value(value.item(), path)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {
            str(key): to_json_value(item, f"{path}.{key}")
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [to_json_value(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise ResponseEncodingError(
        f"response value at {path} has type {type(value).__name__}, which has no "
        "JSON form"
    )
