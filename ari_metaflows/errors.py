"""The one error tree of the service.

::

    Exception
    ├── AriError(status, message)     Asterisk refused an ARI request      (ari.gateway raises)
    │   └── Gone                      the channel/bridge/playback is gone   (HTTP 404 from ARI)
    ├── AriUnavailable                Asterisk unreachable or too slow      (ari.gateway raises)
    ├── ModuleFailed                  a module could not do its job: the flow stops, the call
    │   │                             goes on; audited as "failed"
    │   ├── RecordingRefused          record_call could not start or change the recording
    │   ├── SlotUnavailable           park: the slot is outside the lot, taken, or the lot full
    │   ├── TargetRefused             intercept/move: no such device or user, or none to ring
    │   ├── TtsError                  tts: no speech (features/tts/errors.py: text, voice,
    │   │                             engine, synthesis, timeout)
    │   └── PivotError                pivot: no usable next node (features/pivot/fetch.py:
    │                                 unreachable, timeout, HTTP error, bad answer, too deep)
    └── MetaflowsError                what an API client sees: HTTP status + stable message
        ├── InvalidRequest            400
        ├── ValidationFailed          400, errors keyed by field path
        ├── InvalidIdentifier         400
        ├── Unauthorized              401
        ├── Forbidden                 403
        ├── NotFound                  404
        ├── MethodNotAllowed          405
        ├── RevisionConflict          409
        ├── Conflict                  409
        ├── PayloadTooLarge           413
        ├── DatastoreUnavailable      503  (also raised by the stores to the call engine)
        ├── AsteriskUnavailable       503
        └── NotReady                  503

ARI and module errors never reach a client directly: the API layer raises the MetaflowsError
that fits. Each MetaflowsError carries its HTTP status and a stable ``message`` that doubles as
the error id (clients may switch on it); the API turns them into the Kazoo error envelope in
exactly one place (``api.envelope``). A module that raises anything outside ModuleFailed,
AriError and AriUnavailable is a bug: its flow logs the traceback and is audited as "error".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class AriError(Exception):
    """Asterisk refused a request (status and its message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


class Gone(AriError):
    """The channel, bridge, playback or recording no longer exists (HTTP 404)."""


class AriUnavailable(Exception):
    """Asterisk could not be reached."""


class ModuleFailed(Exception):
    """A module could not do its job; the flow stops, the call goes on."""


class RecordingRefused(ModuleFailed):
    """The recording could not start or change (the reason is in the message)."""


class SlotUnavailable(ModuleFailed):
    """The wanted slot is outside the lot, taken, or the lot is full."""


class TargetRefused(ModuleFailed):
    """intercept/move cannot ring its target: ``not_found`` (unknown device or user, or one of
    another account) or refused (disabled, unreachable, no other device, wrong call state)."""

    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


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
