"""The Kazoo response envelope, produced here and nowhere else."""

from __future__ import annotations

import hashlib
import json
import socket
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .. import __version__
from ..errors import MetaflowsError
from .context import AUTH_TOKEN, REQUEST_ID

NODE = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:22]

_MISSING: Any = object()


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        body["message"] = error.message
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
    return json.dumps(value, ensure_ascii=False)


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
    return respond(request, error.data, status=error.status, error=error, headers=error.headers)
