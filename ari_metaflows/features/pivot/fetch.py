"""Fetch a pivot's next node: ask ``voice_url`` with the call's data, validate the JSON answer.

The request is what Kazoo's pivot sends for ``req_format: kazoo`` (``kzt_kazoo:req_params``),
limited to what this service honestly has: ``Call-ID``, ``Account-ID``, ``Caller-ID-Name``,
``Caller-ID-Number``, ``User-ID`` (once per owner), ``Language`` and ``Digits`` (the collected
digits). Ours in addition: ``Channel-ID`` (the presser's channel), ``Leg-<role>`` (each live
leg's channel id) and ``Capture`` (each capture of the matched pattern, in order). ``GET`` puts
them in the query string (after any query the URL has); ``POST`` sends them as a
``application/x-www-form-urlencoded`` body, or as a JSON object with ``body_format="json"``.

The answer must come within ``timeout`` seconds, be at most ``max_bytes`` long, be JSON (by
Content-Type, when one is given) and be one metaflow node valid like a stored one. Each way it
can fail is its own error, a ``ModuleFailed`` (the one error tree, ``ari_metaflows/errors.py``):
the flow ends ``failed`` and the message, logged with the call id, says why:

    ModuleFailed
    └── PivotError
        ├── PivotUnreachable    connection refused, DNS failure, bad URL
        ├── PivotTimeout        no whole answer within the timeout
        ├── PivotHttpError      a status other than 2xx (``status`` attribute)
        ├── PivotBadAnswer      wrong Content-Type, too large, not JSON
        │   └── PivotInvalidNode    JSON, but not a valid metaflow node (``errors`` attribute)
        └── PivotTooDeep        pivots answering pivots, more than ``MAX_DEPTH`` deep
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ...errors import ModuleFailed, ValidationFailed
from ...metaflows.documents import Node, validate_node

DEFAULT_TIMEOUT = 5.0
MAX_ANSWER_BYTES = 64 * 1024
_JSON_TYPES = ("application/json", "text/json", "text/plain", "application/octet-stream")


class PivotError(ModuleFailed):
    """The pivot gave no usable node; ``str()`` is the reason for the audit trail."""


class PivotUnreachable(PivotError):
    pass


class PivotTimeout(PivotError):
    pass


class PivotHttpError(PivotError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PivotBadAnswer(PivotError):
    pass


class PivotInvalidNode(PivotBadAnswer):
    def __init__(self, errors: Mapping[str, Any], message: str) -> None:
        super().__init__(message)
        self.errors = dict(errors)


class PivotTooDeep(PivotError):
    pass


@dataclass(frozen=True)
class PivotCallData:
    """What the pivot request tells the voice_url about the call."""

    call_id: str
    channel_id: str  # the presser's channel
    legs: Mapping[str, str] = field(default_factory=dict)  # role → channel id
    account_id: str | None = None
    owner_ids: Sequence[str] = ()
    caller_id_name: str | None = None
    caller_id_number: str | None = None
    language: str | None = None
    digits: str = ""
    captures: Sequence[str] = ()

    def fields(self) -> list[tuple[str, str]]:
        """The request fields, Kazoo's names first, in a stable order."""
        pairs: list[tuple[str, str | None]] = [
            ("Call-ID", self.call_id),
            ("Account-ID", self.account_id),
            ("Caller-ID-Name", self.caller_id_name),
            ("Caller-ID-Number", self.caller_id_number),
            *(("User-ID", owner) for owner in self.owner_ids),
            ("Language", self.language),
            ("Digits", self.digits or None),
            ("Channel-ID", self.channel_id),
            *((f"Leg-{role}", channel) for role, channel in sorted(self.legs.items())),
            *(("Capture", capture) for capture in self.captures),
        ]
        return [(name, value) for name, value in pairs if value is not None]

    def json(self) -> dict[str, Any]:
        """The same fields as one JSON object; repeated fields become lists."""
        body: dict[str, Any] = {}
        for name, value in self.fields():
            if name in ("User-ID", "Capture"):
                body.setdefault(name, []).append(value)
            else:
                body[name] = value
        return body


@dataclass(frozen=True)
class PivotAnswer:
    node: dict[str, Any]  # validated, defaults filled, as a stored node
    status: int
    url: str

    def to_node(self) -> Node:
        return Node.from_json(self.node)


def _request_url(url: str, fields: list[tuple[str, str]]) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.urlencode(fields)
    joined = f"{parts.query}&{query}" if parts.query else query
    return urllib.parse.urlunsplit(parts._replace(query=joined))


async def fetch_pivot(
    session: aiohttp.ClientSession,
    url: str,
    method: str,
    call_data: PivotCallData,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    body_format: str = "form",
    max_bytes: int = MAX_ANSWER_BYTES,
) -> PivotAnswer:
    """Ask ``url`` for the next node (raises a ``PivotError`` saying why there is none)."""
    verb = method.lower()
    if verb not in ("get", "post"):
        raise PivotUnreachable(f"pivot method must be get or post, not {method!r}")
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise PivotUnreachable(f"voice_url must be an http:// or https:// URL, got {url!r}")
    fields = call_data.fields()
    options: dict[str, Any] = {}
    if verb == "get":
        target = _request_url(url, fields)
    else:
        target = url
        if body_format == "json":
            options["json"] = call_data.json()
        else:
            options["data"] = fields
    try:
        async with asyncio.timeout(timeout):
            async with session.request(
                verb.upper(),
                target,
                headers={"Accept": "application/json"},
                max_redirects=3,
                **options,
            ) as response:
                return _answer(
                    url, response.status, response.content_type, await _read(response, max_bytes)
                )
    except TimeoutError:
        raise PivotTimeout(f"voice_url gave no answer within {timeout:g} s") from None
    except aiohttp.TooManyRedirects:
        raise PivotUnreachable("voice_url redirected too many times") from None
    except (aiohttp.ClientConnectionError, aiohttp.InvalidURL) as exc:
        raise PivotUnreachable(f"voice_url is unreachable: {exc}") from None
    except aiohttp.ClientResponseError as exc:
        raise PivotBadAnswer(f"voice_url gave a malformed HTTP answer: {exc.message}") from None


async def _read(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    if not 200 <= response.status < 300:
        raise PivotHttpError(response.status, f"voice_url answered HTTP {response.status}")
    if response.content_length is not None and response.content_length > max_bytes:
        raise PivotBadAnswer(f"voice_url's answer is larger than {max_bytes} bytes")
    body = bytearray()
    while chunk := await response.content.read(max_bytes + 1 - len(body)):
        body += chunk
        if len(body) > max_bytes:
            raise PivotBadAnswer(f"voice_url's answer is larger than {max_bytes} bytes")
    return bytes(body)


def _answer(url: str, status: int, content_type: str, body: bytes) -> PivotAnswer:
    if content_type and not (content_type in _JSON_TYPES or content_type.endswith("+json")):
        raise PivotBadAnswer(f"voice_url answered {content_type}, not JSON")
    try:
        raw = json.loads(body)
    except RecursionError:
        raise PivotBadAnswer("voice_url's answer is JSON nested too deeply") from None
    except ValueError:
        raise PivotBadAnswer("voice_url's answer is not JSON") from None
    try:
        node = validate_node(raw)
    except ValidationFailed as failed:
        detail = "; ".join(
            f"{path or 'node'}: {_first_message(problem)}"
            for path, problem in sorted(failed.errors.items())
        )
        raise PivotInvalidNode(
            failed.errors, f"voice_url's answer is not a valid metaflow node: {detail}"
        ) from None
    return PivotAnswer(node=node, status=status, url=url)


def _first_message(problem: Any) -> str:
    if isinstance(problem, Mapping):
        for value in problem.values():
            if isinstance(value, Mapping) and "message" in value:
                return str(value["message"])
    return str(problem)[:200]


async def pivot_node(
    session: aiohttp.ClientSession,
    data: Mapping[str, Any],
    call_data: PivotCallData,
    timeout: float = DEFAULT_TIMEOUT,
) -> Node:
    """The pivot module's work given its validated ``data`` (voice_url, method): the next node."""
    answer = await fetch_pivot(
        session, str(data["voice_url"]), str(data.get("method", "get")), call_data, timeout
    )
    return answer.to_node()
