"""Reading what a client sent: identifiers, the JSON body, the token, If-Match."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from ..auth.tokens import Principal
from ..errors import InvalidIdentifier, InvalidRequest
from ..metaflows.documents import validate_document
from ..metaflows.store import normalise_revision
from .context import CONTEXT, OFFLOAD
from .offload import INLINE_BODY_BYTES

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


# Bodies are bounded before anything trusts them (issue 17): nesting deeper than this,
# integers beyond 64 bits, non-finite numbers and strings that are not valid Unicode are 400s.
MAX_JSON_DEPTH = 64
# Values (scalars and containers) in one body: what is stored is decoded and encoded again on
# every read, on the event loop; 10,000 keeps that to a few ms. Metaflow documents are tiny.
MAX_JSON_VALUES = 10_000
_INT64 = 2**63


def _parse_int(text: str) -> int:
    if len(text) > 20:
        raise ValueError("an integer is out of range")
    value = int(text)
    if not -_INT64 <= value < _INT64:
        raise ValueError("an integer is out of range")
    return value


def _parse_float(text: str) -> float:
    if len(text) > 64:
        raise ValueError("a number is written with too many characters")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("a number is out of range")
    return value


def _parse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(raw: bytes) -> Any:
    """Strict JSON: raise ``InvalidRequest`` for anything a client must not be able to store."""
    try:
        value = json.loads(
            raw,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except RecursionError:
        raise InvalidRequest(
            f"the request body is nested more than {MAX_JSON_DEPTH} levels deep"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    except ValueError as exc:
        raise InvalidRequest(f"the request body is not acceptable JSON: {exc}") from None
    _check_tree(value)
    return value


def _check_tree(value: Any) -> None:
    """Depth and Unicode of every key and string, without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > MAX_JSON_VALUES:
            raise InvalidRequest(f"the request body holds more than {MAX_JSON_VALUES} values")
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise InvalidRequest(
                    f"the request body is nested more than {MAX_JSON_DEPTH} levels deep"
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(
            "the request body holds a string that is not valid Unicode (a lone surrogate)"
        ) from None


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


def data_of(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise InvalidRequest('the request body must be a JSON object {"data": {...}}')
    data: dict[str, Any] = body["data"]
    return data


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
    if not revision or len(revision) > 200:
        raise InvalidRequest("If-Match must carry a document revision")
    return revision
