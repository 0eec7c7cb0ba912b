"""A bare FastAPI endpoint that returns a fixed top-10 slate: the serving baseline.

It serves the model server's v1 predict path with a response of the same shape,
without parsing the request, ranking or counting metrics, so its throughput is
what uvicorn and FastAPI alone reach on this machine. Run it with
``python benchmarks/serving/bare_app.py --port PORT``.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI

FIXED_RESPONSE = {
    "predictions": [
        {
            "userId": "1",
            "items": [str(item) for item in range(1, 11)],
            "scores": [float(10 - rank) for rank in range(10)],
            "version": "fixed",
            "coldStart": False,
        }
    ]
}

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.post("/v1/models/{model_name}:predict")
async def predict(model_name: str) -> dict:
    return FIXED_RESPONSE


@app.get("/v1/models/{model_name}")
async def ready(model_name: str) -> dict:
    return {"name": model_name, "ready": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, required=True, help="HTTP port")
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
