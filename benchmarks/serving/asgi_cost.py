"""CPU time per request of the model server's and the bare endpoint's ASGI apps.

Calls each app in process, without sockets or a load generator, and divides the
process's CPU time (``time.process_time``) by the request count, so other
processes on the machine barely change the result. Prints one JSON object.

Usage: ``python benchmarks/serving/asgi_cost.py MODEL_DIR [REQUESTS]``
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bare_app  # noqa: E402

from adaptrec.model_server.app import create_app  # noqa: E402
from adaptrec.model_server.model import RecommenderModel  # noqa: E402

PATH = "/v1/models/adaptrec:predict"


async def _post(app: Any, body: bytes) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "root_path": "",
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def cpu_us_per_request(app: Any, bodies: Callable[[], bytes], requests: int) -> float:
    """Return the mean CPU microseconds per request after a warm-up."""

    async def drive(count: int) -> None:
        for _ in range(count):
            status = await _post(app, bodies())
            if status != 200:
                raise RuntimeError(f"{PATH} returned HTTP {status}")

    asyncio.run(drive(200))
    started = time.process_time()
    asyncio.run(drive(requests))
    return (time.process_time() - started) / requests * 1e6


def main() -> None:
    model_dir = Path(sys.argv[1])
    requests = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    torch.set_num_threads(1)
    model = RecommenderModel("adaptrec", model_dir)
    model.load()
    assert model.catalogue is not None
    user_ids = model.catalogue.user_ids
    rng = random.Random(0)

    def body() -> bytes:
        return json.dumps({"instances": [rng.choice(user_ids)], "k": 10}).encode()

    print(
        json.dumps(
            {
                "requests": requests,
                "model_server_cpu_us": round(
                    cpu_us_per_request(create_app(model, None), body, requests), 1
                ),
                "bare_fastapi_cpu_us": round(
                    cpu_us_per_request(bare_app.app, body, requests), 1
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
