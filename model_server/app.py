"""The HTTP edge of the model server: routes, error mapping and the uvicorn server.

The app mounts kserve's own v1 and v2 endpoints and ``/metrics`` handler on a
FastAPI app built here, adds the feedback and rollout routes, and maps every
failure to a JSON error response ``{"error": message, "field": field}``.

NOTE: kserve 0.21.0's ``ModelServer`` binds 0.0.0.0 with no option to change it
and always serves the one module-level FastAPI app, so this module composes
kserve's public endpoint registration functions with its own app and uvicorn
server instead of calling ``ModelServer.start``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from . import metrics
from ._kserve import (
    DataPlane,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ModelRepository,
    ModelRepositoryExtension,
    V1Endpoints,
    metrics_handler,
    register_v1_endpoints,
    register_v2_endpoints,
)
from .errors import MalformedBodyError, RequestError, ResponseEncodingError
from .model import RecommenderModel
from .responses import to_json_value

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8080

V1_EXAMPLE = '{"instances": ["196"]} (v1)'
V2_EXAMPLE = (
    '{"inputs": [{"name": "user_id", "datatype": "BYTES", "shape": [1], '
    '"data": ["196"]}]} (v2)'
)


def create_app(model: RecommenderModel, rollout_poll_s: float | None = 2.0) -> FastAPI:
    """Build the ASGI app that serves ``model``, which must already be loaded.

    Args:
        model: The loaded model.
        rollout_poll_s: Seconds between checks of the rollout file while the app
            runs; None disables the background check (tests call
            ``model.rollouts.poll()`` themselves).
    """
    registry = ModelRepository()
    registry.update(model)
    dataplane = DataPlane(model_registry=registry)
    extension = ModelRepositoryExtension(model_registry=registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher = None
        if rollout_poll_s is not None and model.rollouts is not None:
            watcher = asyncio.create_task(model.rollouts.watch(rollout_poll_s))
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    app = FastAPI(
        title="adaptrec model server",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.add_api_route("/", dataplane.live, methods=["GET"])
    app.add_api_route("/metrics", metrics_handler, methods=["GET"])

    async def ready_model(model_name: str) -> RecommenderModel:
        if not await dataplane.model_ready(model_name, True):
            raise ModelNotReady(model_name, "Its artefacts or rollout are not loaded.")
        served = registry.get_model(model_name)
        assert isinstance(served, RecommenderModel)
        return served

    async def feedback(model_name: str, request: Request) -> dict[str, int]:
        served = await ready_model(model_name)
        return served.record_feedback(await request.body())

    async def rollout(model_name: str) -> dict[str, Any]:
        served = await ready_model(model_name)
        return to_json_value(served.rollout_status())

    kserve_v1 = V1Endpoints(dataplane, extension)

    async def predict_v1(model_name: str, request: Request) -> Response:
        # kserve reports an empty body as a JSON syntax error; name it plainly.
        # Starlette caches the body, so kserve's handler reads it again for free.
        await dataplane.model_ready(model_name, True)
        if not (await request.body()).strip():
            metrics.REQUESTS_REJECTED.labels(
                model=model_name, reason="MalformedBodyError"
            ).inc()
            raise MalformedBodyError(
                f"request body is empty; send {V1_EXAMPLE}", "body"
            )
        return await kserve_v1.predict(model_name, request)

    app.add_api_route("/v1/models/{model_name}/feedback", feedback, methods=["POST"])
    app.add_api_route("/v1/models/{model_name}/rollout", rollout, methods=["GET"])
    # Registered before kserve's routes, so this one handles :predict.
    app.add_api_route(
        "/v1/models/{model_name}:predict",
        predict_v1,
        methods=["POST"],
        response_model=None,
    )
    register_v1_endpoints(app, dataplane, extension)
    register_v2_endpoints(app, dataplane, extension)
    _add_exception_handlers(app, registry)
    return app


def serve(
    model: RecommenderModel,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_HTTP_PORT,
    rollout_poll_s: float = 2.0,
    access_log: bool = False,
) -> None:
    """Load ``model`` and serve it over HTTP until SIGINT or SIGTERM.

    The model is loaded before the port opens, so a broken artefact directory
    stops the process with its error instead of a server that is never ready.
    A missing or invalid rollout file does not stop it: the server starts not
    ready and becomes ready when a valid file appears.
    """
    # kserve 0.21.0's v1 handler returns ORJSONResponse, which FastAPI 0.165
    # deprecates; the warning names kserve's code, so the log line would only
    # puzzle an operator.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    model.load()
    app = create_app(model, rollout_poll_s=rollout_poll_s)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        # Logging is configured once by the CLI, so uvicorn must not replace it.
        log_config=None,
        access_log=access_log,
        timeout_graceful_shutdown=30,
    )
    log.info("model %s: serving on http://%s:%d", model.name, host, port)
    uvicorn.Server(config).run()


class _RejectionLog:
    """Logs rejected requests, at most one line per reason every ``interval_s``."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def record(self, reason: str, request: Request, status: int, message: str) -> None:
        now = time.monotonic()
        last = self._last.get(reason)
        if last is not None and now - last < self.interval_s:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return
        suppressed = self._suppressed.pop(reason, 0)
        self._last[reason] = now
        more = f" ({suppressed} more since the last line)" if suppressed else ""
        log.info(
            "rejected %s %s with %d %s: %s%s",
            request.method,
            request.url.path,
            status,
            reason,
            message,
            more,
        )


def _add_exception_handlers(app: FastAPI, registry: ModelRepository) -> None:
    rejections = _RejectionLog()

    def reject(
        request: Request,
        status: int,
        reason: str,
        message: str,
        field: str | None,
        count: bool = False,
    ) -> JSONResponse:
        """Log a rejection and build its response; ``count`` it if the model did not."""
        rejections.record(reason, request, status, message)
        if count:
            # Client-chosen model names are not used as label values, so a
            # scan of made-up names cannot grow the metric without bound.
            name = request.path_params.get("model_name")
            model = name if registry.get_model(str(name)) is not None else "unknown"
            metrics.REQUESTS_REJECTED.labels(model=model, reason=reason).inc()
        return JSONResponse(
            status_code=status, content={"error": message, "field": field}
        )

    async def request_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestError)
        return reject(
            request, error.status, type(error).__name__, error.message, error.field
        )

    async def invalid_input(request: Request, error: Exception) -> JSONResponse:
        # kserve raises InvalidInput when a body is not JSON, before the model runs.
        example = V2_EXAMPLE if request.url.path.startswith("/v2/") else V1_EXAMPLE
        message = f"invalid request: {error}; send a JSON body such as {example}"
        return reject(
            request,
            HTTPStatus.BAD_REQUEST,
            "MalformedBodyError",
            message,
            "body",
            count=True,
        )

    async def validation_error(request: Request, error: Exception) -> JSONResponse:
        # FastAPI validates v2 bodies against the open inference protocol schema.
        assert isinstance(error, RequestValidationError)
        errors = error.errors()
        if any(problem.get("type") == "json_invalid" for problem in errors):
            detail = next(
                str(problem.get("ctx", {}).get("error", problem.get("msg")))
                for problem in errors
                if problem.get("type") == "json_invalid"
            )
            message = f"request body is not valid JSON ({detail}); send {V2_EXAMPLE}"
            return reject(
                request,
                HTTPStatus.BAD_REQUEST,
                "MalformedBodyError",
                message,
                "body",
                count=True,
            )
        problems = []
        first_field = None
        for problem in errors:
            location = [str(part) for part in problem.get("loc", ())]
            # The v2 body is declared as InferenceRequest | bytes; the bytes
            # branch only fails because the JSON branch did, so it adds nothing.
            if location[:2] == ["body", "bytes"]:
                continue
            location = [
                part for part in location if part not in ("body", "InferenceRequest")
            ]
            field = ".".join(location) or "body"
            first_field = first_field or field
            problems.append(f"{field}: {problem.get('msg', 'invalid')}")
        if first_field == "body":
            message = f"request body is empty; send {V2_EXAMPLE}"
        else:
            message = (
                "request does not match the v2 inference request schema: "
                + "; ".join(problems[:5])
            )
        return reject(
            request,
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "ValidationError",
            message,
            first_field,
            count=True,
        )

    async def model_not_found(request: Request, error: Exception) -> JSONResponse:
        served = sorted(registry.get_models())
        name = request.path_params.get("model_name")
        message = f"model {name!r} not found; this server serves {served}"
        return reject(
            request,
            HTTPStatus.NOT_FOUND,
            "ModelNotFound",
            message,
            "model name",
            count=True,
        )

    async def model_not_ready(request: Request, error: Exception) -> JSONResponse:
        message = f"{error} Retry when /v2/models/<name>/ready returns 200."
        return reject(
            request, HTTPStatus.SERVICE_UNAVAILABLE, "ModelNotReady", message, None
        )

    async def not_implemented(request: Request, error: Exception) -> JSONResponse:
        message = f"not supported by this model server: {error}"
        return reject(
            request, HTTPStatus.NOT_IMPLEMENTED, "NotImplemented", message, None
        )

    async def server_error(request: Request, error: Exception) -> JSONResponse:
        # A server fault: log the traceback here, but never send it to clients.
        log.error(
            "%s %s failed: %s", request.method, request.url.path, error, exc_info=error
        )
        if isinstance(error, ResponseEncodingError):
            message = f"internal error: {error}"
        else:
            message = f"internal error: {type(error).__name__}: {error}"
        return JSONResponse(
            status_code=HTTPStatus.INTERNAL_SERVER_ERROR,
            content={"error": message, "field": None},
        )

    app.add_exception_handler(RequestError, request_error)
    app.add_exception_handler(InvalidInput, invalid_input)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ModelNotFound, model_not_found)
    app.add_exception_handler(ModelNotReady, model_not_ready)
    app.add_exception_handler(NotImplementedError, not_implemented)
    # A specific class is handled by ExceptionMiddleware, which returns the
    # response; the catch-all Exception handler also re-raises to the server.
    app.add_exception_handler(ResponseEncodingError, server_error)
    app.add_exception_handler(Exception, server_error)
