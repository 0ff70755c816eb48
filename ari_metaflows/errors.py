"""The one error tree of the service.

Every failure a client can see is one of these classes. Each carries its HTTP status and a
stable ``message`` that doubles as the error id (clients may switch on it); the API turns them
into the Kazoo error envelope in exactly one place (``api.envelope``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class MetaflowsError(Exception):
    status: ClassVar[int] = 500
    message: ClassVar[str] = "internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.message)
        self.detail = detail
        self.data: dict[str, Any] = dict(data) if data is not None else {}
        if detail is not None and "message" not in self.data:
            self.data["message"] = detail
        self.headers: dict[str, str] = dict(headers) if headers is not None else {}


class InvalidRequest(MetaflowsError):
    """The body is not JSON, or not the ``{"data": {...}}`` shape."""

    status = 400
    message = "invalid request"


class ValidationFailed(MetaflowsError):
    """A document failed validation; ``data`` is keyed by dotted field path."""

    status = 400
    message = "validation error"

    def __init__(self, errors: Mapping[str, Any]) -> None:
        super().__init__(data=errors)
        self.errors = dict(errors)


class InvalidIdentifier(MetaflowsError):
    status = 400
    message = "invalid identifier"


class Unauthorized(MetaflowsError):
    status = 401
    message = "invalid credentials"


class Forbidden(MetaflowsError):
    status = 403
    message = "forbidden"


class NotFound(MetaflowsError):
    status = 404
    message = "not found"


class MethodNotAllowed(MetaflowsError):
    status = 405
    message = "method not allowed"


class RevisionConflict(MetaflowsError):
    status = 409
    message = "conflicting revision"


class Conflict(MetaflowsError):
    """The resource is in a state that does not allow this (e.g. deleting a live recording)."""

    status = 409
    message = "conflict"


class PayloadTooLarge(MetaflowsError):
    status = 413
    message = "request entity too large"


class DatastoreUnavailable(MetaflowsError):
    status = 503
    message = "datastore unavailable"


class AsteriskUnavailable(MetaflowsError):
    status = 503
    message = "asterisk unavailable"


class NotReady(MetaflowsError):
    status = 503
    message = "not ready"
