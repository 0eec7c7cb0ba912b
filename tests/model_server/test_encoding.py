"""JSON encoding of responses: numpy values, dates, NaN and unknown types."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import numpy as np
import orjson
import pytest

from adaptrec.model_server.errors import ResponseEncodingError
from adaptrec.model_server.responses import to_json_value


def test_numpy_values_become_python() -> None:
    value = {
        "items": np.array(["1", "2"], dtype=object),
        "scores": np.array([0.5, 0.25], dtype=np.float32),
        "count": np.int64(2),
        "flag": np.bool_(True),
        "matrix": np.arange(4).reshape(2, 2),
    }

    encoded = to_json_value(value)

    assert encoded == {
        "items": ["1", "2"],
        "scores": [0.5, 0.25],
        "count": 2,
        "flag": True,
        "matrix": [[0, 1], [2, 3]],
    }
    assert type(encoded["count"]) is int
    assert type(encoded["flag"]) is bool
    assert orjson.loads(orjson.dumps(encoded)) == encoded


def test_dates_become_iso_strings() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    encoded = to_json_value({"loadedAt": moment, "day": date(2026, 1, 2)})

    assert encoded == {"loadedAt": "2026-01-02T03:04:05+00:00", "day": "2026-01-02"}


@pytest.mark.parametrize(
    "bad", [math.nan, math.inf, -math.inf, np.float32("nan"), np.float64("inf")]
)
def test_non_finite_number_fails_naming_path(bad: float) -> None:
    value = {"predictions": [{"scores": [1.0, bad]}]}

    with pytest.raises(ResponseEncodingError) as raised:
        to_json_value(value)

    assert "$.predictions[0].scores[1]" in str(raised.value)


def test_unknown_type_fails_naming_type() -> None:
    with pytest.raises(ResponseEncodingError) as raised:
        to_json_value({"model": object()})

    assert "$.model" in str(raised.value)
    assert "object" in str(raised.value)
