"""The pivot fetcher against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ari_metaflows.features.pivot.fetch import (
    PivotBadAnswer,
    PivotCallData,
    PivotHttpError,
    PivotInvalidNode,
    PivotTimeout,
    PivotUnreachable,
    fetch_pivot,
    pivot_node,
)

NODE = {
    "module": "say",
    "data": {"text": "42", "type": "number"},
    "children": {"_": {"module": "hold_control"}},
}
CALL = PivotCallData(
    call_id="call-1",
    channel_id="chan-a",
    legs={"caller": "chan-a", "callee": "chan-b"},
    account_id="acct1",
    owner_ids=("user1", "user2"),
    caller_id_name="Alice",
    caller_id_number="1001",
    language="en-US",
    digits="*72",
    captures=("72",),
)

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class PivotServer:
    url: str
    answer: Answer
    seen: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def pivot_server() -> AsyncIterator[PivotServer]:
    async def good(request: web.Request) -> web.StreamResponse:
        return web.json_response(NODE)

    holder = PivotServer(url="", answer=good)

    async def handle(request: web.Request) -> web.StreamResponse:
        body: Any = None
        if request.content_type == "application/json":
            body = await request.json()
        elif request.can_read_body:
            body = [list(pair) for pair in (await request.post()).items()]
        holder.seen.append(
            {
                "method": request.method,
                "query": [list(pair) for pair in request.query.items()],
                "body": body,
            }
        )
        return await holder.answer(request)

    app = web.Application()
    app.router.add_route("*", "/pivot", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    holder.url = str(server.make_url("/pivot"))
    try:
        yield holder
    finally:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


KAZOO_FIELDS = [
    ["Call-ID", "call-1"],
    ["Account-ID", "acct1"],
    ["Caller-ID-Name", "Alice"],
    ["Caller-ID-Number", "1001"],
    ["User-ID", "user1"],
    ["User-ID", "user2"],
    ["Language", "en-US"],
    ["Digits", "*72"],
    ["Channel-ID", "chan-a"],
    ["Leg-callee", "chan-b"],
    ["Leg-caller", "chan-a"],
    ["Capture", "72"],
]


async def test_get_sends_the_call_in_the_query_and_answers_the_node(
    pivot_server: PivotServer, session: aiohttp.ClientSession
) -> None:
    answer = await fetch_pivot(session, pivot_server.url + "?tenant=t1", "GET", CALL)
    assert answer.status == 200
    assert answer.node["module"] == "say"
    # Kazoo's defaults filled like a stored node
    assert answer.node["children"]["_"]["data"] == {"action": "toggle"}
    node = answer.to_node()
    assert node.children["_"].module == "hold_control"
    [seen] = pivot_server.seen
    assert seen["method"] == "GET"
    assert seen["query"] == [["tenant", "t1"], *KAZOO_FIELDS]


async def test_post_sends_a_form_or_json(
    pivot_server: PivotServer, session: aiohttp.ClientSession
) -> None:
    await fetch_pivot(session, pivot_server.url, "post", CALL)
    await fetch_pivot(session, pivot_server.url, "post", CALL, body_format="json")
    form, as_json = pivot_server.seen
    assert form["query"] == []
    assert form["body"] == KAZOO_FIELDS
    assert as_json["body"]["User-ID"] == ["user1", "user2"]
    assert as_json["body"]["Capture"] == ["72"]
    assert as_json["body"]["Call-ID"] == "call-1"


async def test_the_module_entry_gives_the_next_node(
    pivot_server: PivotServer, session: aiohttp.ClientSession
) -> None:
    node = await pivot_node(session, {"voice_url": pivot_server.url, "method": "get"}, CALL)
    assert node.module == "say"


async def test_a_slow_server_times_out(
    pivot_server: PivotServer, session: aiohttp.ClientSession
) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.json_response(NODE)

    pivot_server.answer = slow
    try:
        with pytest.raises(PivotTimeout, match=r"no answer within 0\.2 s"):
            await fetch_pivot(session, pivot_server.url, "get", CALL, timeout=0.2)
    finally:
        release.set()


async def test_a_slow_body_times_out_too(
    pivot_server: PivotServer, session: aiohttp.ClientSession
) -> None:
    release = asyncio.Event()

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"module": ')
        await release.wait()
        return response

    pivot_server.answer = trickle
    try:
        with pytest.raises(PivotTimeout):
            await fetch_pivot(session, pivot_server.url, "get", CALL, timeout=0.2)
    finally:
        release.set()


@pytest.mark.parametrize("status", [500, 404, 302])
async def test_an_http_error_is_named(
    pivot_server: PivotServer, session: aiohttp.ClientSession, status: int
) -> None:
    async def failing(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text="nope")

    pivot_server.answer = failing
    with pytest.raises(PivotHttpError, match=f"answered HTTP {status}") as caught:
        await fetch_pivot(session, pivot_server.url, "get", CALL)
    assert caught.value.status == status


async def test_a_non_json_answer_is_refused(
    pivot_server: PivotServer, session: aiohttp.ClientSession
) -> None:
    bodies = iter(
        [
            web.Response(text="<Response><Say>hi</Say></Response>", content_type="text/xml"),
            web.Response(text="<html>oops</html>", content_type="text/html"),
            web.Response(text="{not json", content_type="application/json"),
            web.Response(text="[" * 5000 + "]" * 5000, content_type="application/json"),
        ]
    )

    async def wrong(request: web.Request) -> web.StreamResponse:
        return next(bodies)

    pivot_server.answer = wrong
    with pytest.raises(PivotBadAnswer, match="answered text/xml, not JSON"):
        await fetch_pivot(session, pivot_server.url, "get", CALL)
    with pytest.raises(PivotBadAnswer, match="answered text/html, not JSON"):
        await fetch_pivot(session, pivot_server.url, "get", CALL)
    with pytest.raises(PivotBadAnswer, match="is not JSON"):
        await fetch_pivot(session, pivot_server.url, "get", CALL)
    with pytest.raises(PivotBadAnswer, match="nested too deeply"):
        await fetch_pivot(session, pivot_server.url, "get", CALL)


async def test_an_invalid_node_is_refused_with_the_reasons(
    pivot_server: PivotServer, session: aiohttp.ClientSession
) -> None:
    answers = iter(
        [
            {"module": "no_such_module"},
            {"module": "play", "data": {"id": 5}},
            {"module": "pivot", "data": {"voice_url": "http://x", "req_format": "twiml"}},
        ]
    )

    async def invalid(request: web.Request) -> web.StreamResponse:
        return web.json_response(next(answers))

    pivot_server.answer = invalid
    with pytest.raises(PivotInvalidNode, match="unable to find metaflow schema") as caught:
        await fetch_pivot(session, pivot_server.url, "get", CALL)
    assert "module" in caught.value.errors
    with pytest.raises(PivotInvalidNode, match=r"data\.id: Value did not match type"):
        await fetch_pivot(session, pivot_server.url, "get", CALL)
    with pytest.raises(PivotInvalidNode):
        await fetch_pivot(session, pivot_server.url, "get", CALL)


async def test_an_oversized_answer_is_refused(
    pivot_server: PivotServer, session: aiohttp.ClientSession
) -> None:
    big = {**NODE, "padding": "x" * 70_000}

    async def declared(request: web.Request) -> web.StreamResponse:
        return web.json_response(big)

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        payload = json.dumps(big).encode()
        for start in range(0, len(payload), 8192):
            await response.write(payload[start : start + 8192])
        await response.write_eof()
        return response

    for answer in (declared, chunked):
        pivot_server.answer = answer
        with pytest.raises(PivotBadAnswer, match="larger than 65536 bytes"):
            await fetch_pivot(session, pivot_server.url, "get", CALL)


async def test_an_unreachable_or_malformed_voice_url(session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(PivotUnreachable, match="unreachable"):
        await fetch_pivot(session, f"http://127.0.0.1:{port}/pivot", "get", CALL)
    with pytest.raises(PivotUnreachable, match="http:// or https://"):
        await fetch_pivot(session, "ftp://127.0.0.1/pivot", "get", CALL)
    with pytest.raises(PivotUnreachable, match="get or post"):
        await fetch_pivot(session, "http://127.0.0.1/pivot", "delete", CALL)
