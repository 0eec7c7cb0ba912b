"""User-facing failures of the model server, one class per failure.

Each class carries the HTTP status it maps to and, where one exists, the request
field at fault. ``adaptrec.model_server.app`` turns them into JSON error responses
``{"error": message, "field": field}`` at the HTTP edge, so handlers raise them
without knowing about HTTP.
"""

from __future__ import annotations

from http import HTTPStatus


class RequestError(Exception):
    """A request the server rejects because of what the client sent."""

    status: HTTPStatus = HTTPStatus.BAD_REQUEST

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class MalformedBodyError(RequestError):
    """The request body is empty or is not valid JSON."""


class MissingFieldError(RequestError):
    """A required field is absent or null."""


class InvalidFieldError(RequestError):
    """A field has the wrong type or a value outside its allowed range."""


class RequestTooLargeError(RequestError):
    """One request names more users or events than the server's configured maximum."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnknownItemError(RequestError):
    """An item id is not in the served model's catalogue."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY


class UnknownVersionError(RequestError):
    """Feedback names a hyperparameter version this server has not served recently."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY


class ResponseEncodingError(Exception):
    """A response value cannot be written as JSON; a server bug, not a client one."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR
