"""Reading what a client sent: identifiers, the JSON body, the token, If-Match."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from ..auth.tokens import Principal
from ..errors import InvalidIdentifier, InvalidRequest
from ..metaflows.documents import validate_document
from ..metaflows.store import normalise_revision
from .bodies import data_of, parse_json
from .context import CONTEXT, OFFLOAD
from .offload import INLINE_BODY_BYTES

ID_RE = re.compile(r"^[A-Za-z0-9_@+.-]{1,128}$")
REVISION_RE = re.compile(r"^[!-~]{1,200}$")


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
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:  # not "³"
        raise InvalidRequest(f"page_size must be a whole number from 1 to {maximum}")
    return int(raw)


def token_of(request: web.Request) -> str:
    """The caller's token: ``X-Auth-Token``, ``Authorization: Bearer``, or ``?auth_token=``."""
    token = request.headers.get("X-Auth-Token", "")
    if token:
        return token
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.query.get("auth_token", "")


async def principal_for(request: web.Request, account_id: str) -> Principal:
    authenticator = request.app[CONTEXT].authenticator
    principal = await authenticator.authenticate(token_of(request))
    principal.require_account(account_id)
    return principal


async def _raw_body(request: web.Request) -> bytes:
    raw = await request.read()
    if not raw.strip():
        raise InvalidRequest('the request body is empty; send {"data": {...}}')
    return raw


async def json_body(request: web.Request) -> Any:
    """The parsed body; a big one is parsed in the worker process (``offload``)."""
    raw = await _raw_body(request)
    if len(raw) > INLINE_BODY_BYTES:
        return await request.app[OFFLOAD].parse(raw, document=False)
    return parse_json(raw)


async def data_object(request: web.Request) -> dict[str, Any]:
    """The ``data`` object of a ``{"data": {...}}`` body."""
    return data_of(await json_body(request))


async def metaflow_document(request: web.Request) -> dict[str, Any]:
    """The validated metaflow document of a ``{"data": {...}}`` body, defaults filled; a big
    body is parsed and validated in the worker process."""
    raw = await _raw_body(request)
    if len(raw) > INLINE_BODY_BYTES:
        document: dict[str, Any] = await request.app[OFFLOAD].parse(raw, document=True)
        return document
    return validate_document(data_of(parse_json(raw)))


def if_match(request: web.Request) -> str | None:
    value = request.headers.get("If-Match")
    if value is None:
        return None
    revision = normalise_revision(value)
    # Revisions are printable ASCII; anything else (undecodable bytes) never reaches the store.
    if not revision or not REVISION_RE.match(revision):
        raise InvalidRequest("If-Match must carry a document revision")
    return revision
