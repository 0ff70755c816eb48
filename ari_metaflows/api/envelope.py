"""The Kazoo response envelope, produced here and nowhere else."""

from __future__ import annotations

import hashlib
import json
import math
import socket
from typing import Any

from aiohttp import web

from .. import __version__
from ..errors import (
    AsteriskUnavailable,
    DatastoreUnavailable,
    Forbidden,
    MetaflowsError,
    MethodNotAllowed,
    NotFound,
    NotReady,
    PayloadTooLarge,
    RevisionConflict,
    Unauthorized,
)
from ..timefmt import iso_utc
from .context import AUTH_TOKEN, REQUEST_ID

NODE = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:22]

_MISSING: Any = object()


def _timestamp() -> str:
    return iso_utc()


# Crossbar's error ids (the top-level ``message``; the human text goes to ``data.message``).
# 400s keep their ids ("invalid request", "validation error", "invalid identifier").
ERROR_IDS: dict[type[MetaflowsError], str] = {
    Unauthorized: "invalid_credentials",
    Forbidden: "forbidden",
    NotFound: "not_found",
    MethodNotAllowed: "invalid_method",
    RevisionConflict: "datastore_conflict",
    PayloadTooLarge: "request_entity_too_large",
    DatastoreUnavailable: "datastore_unreachable",
    AsteriskUnavailable: "asterisk_unreachable",
    NotReady: "not_ready",
    MetaflowsError: "internal_error",
}


def error_id(error: MetaflowsError) -> str:
    """The id clients switch on: crossbar's where it has one, else the message in snake case."""
    for kind in type(error).__mro__:
        if kind in ERROR_IDS and (kind is type(error) or kind is not MetaflowsError):
            return ERROR_IDS[kind]
    if error.status == 400:
        return error.message
    return error.message.replace(" ", "_")


def error_data(error: MetaflowsError) -> Any:
    """``data`` of an error answer: always carries the human text in ``message``."""
    data = dict(error.data)
    if error.status != 400 or not data:
        data.setdefault("message", error.detail or error.message)
    return data


def paging(shown: int, start_key: str | None, next_start_key: str | None) -> dict[str, Any]:
    """Kazoo's paging fields of one page of a listing (``envelope``'s ``paging``)."""
    fields: dict[str, Any] = {"page_size": shown}
    if start_key is not None:
        fields["start_key"] = start_key
    if next_start_key is not None:
        fields["next_start_key"] = next_start_key
    return fields


def envelope(
    *,
    auth_token: str,
    request_id: str,
    data: Any,
    revision: str | None = None,
    error: MetaflowsError | None = None,
    paging: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``paging``: Kazoo's top-level ``page_size``, ``start_key``, ``next_start_key``."""
    body: dict[str, Any] = {
        "auth_token": auth_token,
        "data": data,
        "node": NODE,
        "request_id": request_id,
    }
    if error is not None:
        body["error"] = str(error.status)
        body["message"] = error_id(error)
        body["status"] = "error"
    else:
        if revision is not None:
            body["revision"] = revision
        body.update(paging or {})
        body["status"] = "success"
    body["timestamp"] = _timestamp()
    body["version"] = __version__
    return body


def _dumps(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        if not text.isascii():
            text.encode("utf-8")  # a lone surrogate (stored before issue 17) must not 500
        return text
    except (ValueError, UnicodeEncodeError):
        # Never an invalid JSON answer: non-finite numbers become null, text is \u-escaped.
        return json.dumps(_finite(value), ensure_ascii=True, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def respond(
    request: web.Request,
    data: Any,
    *,
    status: int = 200,
    revision: str | None = None,
    error: MetaflowsError | None = None,
    headers: dict[str, str] | None = None,
    paging: dict[str, Any] | None = None,
) -> web.Response:
    body = envelope(
        auth_token=request.get(AUTH_TOKEN, ""),
        request_id=request.get(REQUEST_ID, ""),
        data=data,
        revision=revision,
        error=error,
        paging=paging,
    )
    all_headers = {"X-Request-ID": body["request_id"]}
    if revision is not None and error is None:
        all_headers["ETag"] = f'"{revision}"'
    if headers:
        all_headers.update(headers)
    return web.json_response(body, status=status, headers=all_headers, dumps=_dumps)


def respond_error(request: web.Request, error: MetaflowsError) -> web.Response:
    return respond(
        request, error_data(error), status=error.status, error=error, headers=error.headers
    )
