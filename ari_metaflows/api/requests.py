"""Reading what a client sent: identifiers, the JSON body, the token, If-Match."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from ..auth.tokens import Principal
from ..errors import InvalidIdentifier, InvalidRequest
from ..metaflows.store import normalise_revision
from .context import CONTEXT

ID_RE = re.compile(r"^[A-Za-z0-9_@+.-]{1,128}$")


def path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not ID_RE.match(value):
        raise InvalidIdentifier(
            f"{name} must be 1-128 characters of letters, digits and _ @ + . -",
            data={"message": "invalid identifier", name: value[:200]},
        )
    return value


def query_id(request: web.Request, name: str) -> str | None:
    """An optional identifier in the query string."""
    value = request.query.get(name)
    if value is None:
        return None
    if not ID_RE.match(value):
        raise InvalidRequest(f"{name} must be 1-128 characters of letters, digits and _ @ + . -")
    return value


def page_size(request: web.Request, default: int, maximum: int) -> int:
    raw = request.query.get("page_size")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise InvalidRequest(f"page_size must be a whole number from 1 to {maximum}")
    return int(raw)


async def principal_for(request: web.Request, account_id: str) -> Principal:
    authenticator = request.app[CONTEXT].authenticator
    principal = await authenticator.authenticate(request.headers.get("X-Auth-Token"))
    principal.require_account(account_id)
    return principal


async def json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise InvalidRequest('the request body is empty; send {"data": {...}}')
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc


async def data_object(request: web.Request) -> dict[str, Any]:
    """The ``data`` object of a ``{"data": {...}}`` body."""
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise InvalidRequest('the request body must be a JSON object {"data": {...}}')
    data: dict[str, Any] = body["data"]
    return data


def if_match(request: web.Request) -> str | None:
    value = request.headers.get("If-Match")
    if value is None:
        return None
    revision = normalise_revision(value)
    if not revision or len(revision) > 200:
        raise InvalidRequest("If-Match must carry a document revision")
    return revision
