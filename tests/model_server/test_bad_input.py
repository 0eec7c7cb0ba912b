"""Bad requests get a 4xx naming the field, never a 500 or a stack trace."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.model_server.conftest import (
    SPACE,
    SavedModel,
    ServedModel,
    serve_in_process,
    user_id_tensor,
)

pytestmark = [
    pytest.mark.slow,
    # kserve 0.21.0's v1 handler returns FastAPI's deprecated ORJSONResponse.
    pytest.mark.filterwarnings("ignore:ORJSONResponse is deprecated"),
]

PREDICT = "/v1/models/hybrid:predict"
INFER = "/v2/models/hybrid/infer"
FEEDBACK = "/v1/models/hybrid/feedback"
VERSION = SPACE.initial().version


@dataclass(frozen=True)
class Case:
    """A bad request: path, body (built from the catalogue size), status, field."""

    path: str
    body: Callable[[int], dict[str, Any]]
    status: int
    field: str | None


def raw(content: bytes, content_type: str = "application/json") -> Callable:
    return lambda n_items: {
        "content": content,
        "headers": {"content-type": content_type},
    }


def json_body(value: Any) -> Callable:
    return lambda n_items: {"json": value}


CASES = {
    # v1 predict
    "v1-empty-body": Case(PREDICT, raw(b""), 400, "body"),
    "v1-whitespace-body": Case(PREDICT, raw(b"  \n"), 400, "body"),
    "v1-not-json": Case(PREDICT, raw(b"{instances"), 400, "body"),
    "v1-not-json-plain-text": Case(PREDICT, raw(b"hello", "text/plain"), 400, "body"),
    "v1-list-body": Case(PREDICT, json_body([1, 2]), 400, "body"),
    "v1-empty-object": Case(PREDICT, json_body({}), 400, "instances"),
    "v1-empty-instances": Case(PREDICT, json_body({"instances": []}), 400, "instances"),
    "v1-null-instances": Case(
        PREDICT, json_body({"instances": None}), 400, "instances"
    ),
    "v1-instances-object": Case(
        PREDICT, json_body({"instances": {"userId": "1"}}), 400, "instances"
    ),
    "v1-missing-user-id": Case(
        PREDICT, json_body({"instances": [{"k": 3}]}), 400, "instances[0].userId"
    ),
    "v1-null-user-id": Case(
        PREDICT,
        json_body({"instances": [{"userId": None}]}),
        400,
        "instances[0].userId",
    ),
    "v1-bool-user-id": Case(
        PREDICT, json_body({"instances": ["1", True]}), 400, "instances[1]"
    ),
    "v1-float-user-id": Case(
        PREDICT, json_body({"instances": [1.5]}), 400, "instances[0]"
    ),
    "v1-empty-user-id": Case(
        PREDICT, json_body({"instances": [""]}), 400, "instances[0]"
    ),
    "v1-unknown-instance-key": Case(
        PREDICT,
        json_body({"instances": [{"userId": "1", "excludes": []}]}),
        400,
        "instances[0]",
    ),
    "v1-k-zero": Case(PREDICT, json_body({"instances": ["1"], "k": 0}), 400, "k"),
    "v1-k-negative": Case(
        PREDICT,
        json_body({"instances": [{"userId": "1", "k": -1}]}),
        400,
        "instances[0].k",
    ),
    "v1-k-above-catalogue": Case(
        PREDICT,
        lambda n_items: {"json": {"instances": ["1"], "k": n_items + 1}},
        400,
        "k",
    ),
    "v1-k-string": Case(PREDICT, json_body({"instances": ["1"], "k": "10"}), 400, "k"),
    "v1-k-float": Case(PREDICT, json_body({"instances": ["1"], "k": 2.5}), 400, "k"),
    "v1-k-bool": Case(PREDICT, json_body({"instances": ["1"], "k": True}), 400, "k"),
    "v1-too-many-users": Case(
        PREDICT, json_body({"instances": ["1"] * 6}), 413, "instances"
    ),
    "v1-unknown-model": Case(
        "/v1/models/nope:predict", json_body({"instances": ["1"]}), 404, "model name"
    ),
    "v1-unknown-excluded-item": Case(
        PREDICT,
        json_body({"instances": [{"userId": "1", "exclude": ["1", "no-such-item"]}]}),
        422,
        "instances[0].exclude[1]",
    ),
    "v1-exclude-not-list": Case(
        PREDICT,
        json_body({"instances": [{"userId": "1", "exclude": "50"}]}),
        400,
        "instances[0].exclude",
    ),
    # v2 infer
    "v2-empty-body": Case(INFER, raw(b""), 422, "body"),
    "v2-not-json": Case(INFER, raw(b"{inputs"), 400, "body"),
    "v2-empty-object": Case(INFER, json_body({}), 422, "inputs"),
    "v2-null-inputs": Case(INFER, json_body({"inputs": None}), 422, "inputs"),
    "v2-no-user-tensor": Case(INFER, json_body({"inputs": []}), 400, "inputs.user_id"),
    "v2-unknown-tensor": Case(
        INFER,
        json_body(
            {"inputs": [user_id_tensor(["1"]), {**user_id_tensor(["1"]), "name": "x"}]}
        ),
        400,
        "inputs",
    ),
    "v2-float-user-ids": Case(
        INFER,
        json_body({"inputs": [user_id_tensor([1.0], "FP32")]}),
        400,
        "inputs.user_id.datatype",
    ),
    "v2-shape-mismatch": Case(
        INFER,
        json_body({"inputs": [user_id_tensor(["1", "2"], shape=[3])]}),
        400,
        "inputs.user_id.data",
    ),
    "v2-matrix-of-users": Case(
        INFER,
        json_body({"inputs": [user_id_tensor(["1", "2", "3", "4"], shape=[2, 2])]}),
        400,
        "inputs.user_id.shape",
    ),
    "v2-empty-users": Case(
        INFER, json_body({"inputs": [user_id_tensor([])]}), 400, "inputs.user_id"
    ),
    "v2-k-zero": Case(
        INFER,
        json_body({"inputs": [user_id_tensor(["1"])], "parameters": {"k": 0}}),
        400,
        "parameters.k",
    ),
    "v2-too-many-users": Case(
        INFER, json_body({"inputs": [user_id_tensor(["1"] * 6)]}), 413, "inputs.user_id"
    ),
    "v2-unknown-excluded-item": Case(
        INFER,
        json_body(
            {
                "inputs": [
                    user_id_tensor(["1"]),
                    {
                        "name": "exclude",
                        "datatype": "BYTES",
                        "shape": [1, 1],
                        "data": ["no-such-item"],
                    },
                ]
            }
        ),
        422,
        "inputs.exclude.data[0]",
    ),
    "v2-unknown-model": Case(
        "/v2/models/nope/infer",
        json_body({"inputs": [user_id_tensor(["1"])]}),
        404,
        "model name",
    ),
    # feedback
    "feedback-empty-body": Case(FEEDBACK, raw(b""), 400, "body"),
    "feedback-not-json": Case(FEEDBACK, raw(b"click!"), 400, "body"),
    "feedback-empty-object": Case(FEEDBACK, json_body({}), 400, "userId"),
    "feedback-unknown-item": Case(
        FEEDBACK,
        json_body({"userId": "1", "itemId": "no-such-item", "version": VERSION}),
        422,
        "itemId",
    ),
    "feedback-unknown-version": Case(
        FEEDBACK,
        json_body({"userId": "1", "itemId": "1", "version": "000000000000"}),
        422,
        "version",
    ),
    "feedback-version-number": Case(
        FEEDBACK,
        json_body({"userId": "1", "itemId": "1", "version": 5}),
        400,
        "version",
    ),
    "feedback-empty-events": Case(FEEDBACK, json_body({"events": []}), 400, "events"),
    "feedback-event-missing-version": Case(
        FEEDBACK,
        json_body(
            {
                "events": [
                    {"userId": "1", "itemId": "1", "version": VERSION},
                    {"userId": "1", "itemId": "1"},
                ]
            }
        ),
        400,
        "events[1].version",
    ),
    "feedback-unknown-model": Case(
        "/v1/models/nope/feedback",
        json_body({"userId": "1", "itemId": "1", "version": VERSION}),
        404,
        "model name",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_request_rejected_with_field(served: ServedModel, case: Case) -> None:
    n_items = served.model.catalogue.n_items

    response = served.client.post(case.path, **case.body(n_items))

    assert response.status_code == case.status, response.text
    body = response.json()
    assert body["field"] == case.field
    assert isinstance(body["error"], str)
    if case.field not in (None, "body", "model name"):
        assert case.field in body["error"]
    assert "Traceback" not in response.text
    assert 'File "' not in response.text


@pytest.fixture(scope="module")
def served_small(saved_model: SavedModel) -> Iterator[ServedModel]:
    """The saved model with a limit of two click events per feedback request."""
    yield from serve_in_process("hybrid-small", saved_model, max_events=2)


def test_feedback_batch_too_large(served_small: ServedModel) -> None:
    events = [{"userId": "1", "itemId": "1", "version": VERSION}] * 3
    served = served_small

    response = served.client.post(
        f"/v1/models/{served.name}/feedback", json={"events": events}
    )

    assert response.status_code == 413
    assert response.json()["field"] == "events"


def test_rejections_counted_by_reason(served: ServedModel) -> None:
    def rejected(reason: str) -> float:
        value = REGISTRY.get_sample_value(
            "adaptrec_requests_rejected_total", {"model": "hybrid", "reason": reason}
        )
        return value or 0.0

    before = rejected("InvalidFieldError")
    served.client.post(PREDICT, json={"instances": ["1"], "k": 0})
    assert rejected("InvalidFieldError") == before + 1

    before = rejected("MalformedBodyError")
    served.client.post(
        PREDICT, content=b"", headers={"content-type": "application/json"}
    )
    assert rejected("MalformedBodyError") == before + 1
