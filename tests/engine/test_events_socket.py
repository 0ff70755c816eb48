"""The event websocket reader (ari/events_socket.py) against real websocket servers on loopback:
aiohttp's for what a well-behaved server does, a scripted one for what a broken one does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from ari_metaflows.ari.events_socket import (
    EventSocket,
    WebSocketRefused,
    accept_key,
    open_event_socket,
)

from ..helpers.recording_transport import RecordingTransport

WsHandler = Callable[[web.WebSocketResponse], Awaitable[None]]


@contextlib.asynccontextmanager
async def ws_server(
    handler: WsHandler, *, status: int = 101, seen: list[web.Request] | None = None
) -> AsyncIterator[int]:
    """An aiohttp websocket server on loopback; its port. ``status`` other than 101 refuses."""

    async def serve(request: web.Request) -> web.StreamResponse:
        if seen is not None:
            seen.append(request)
        if status != 101:
            return web.Response(status=status, text="no")
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        await handler(ws)
        return ws

    app = web.Application()
    app.router.add_get("/ari/events", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        assert site._server is not None
        yield int(site._server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
    finally:
        await runner.cleanup()


async def connect(
    port: int, received: list[dict[str, Any]], heartbeat: float | None = None
) -> EventSocket:
    return await open_event_socket(
        "127.0.0.1",
        port,
        "/ari/events?app=metaflows",
        authorization="Basic dTpw",
        receive=received.append,
        timeout=2.0,
        heartbeat=heartbeat,
    )


async def test_events_arrive_in_order_whole_and_only_json_objects_with_a_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    big = {"type": "Big", "pad": "x" * 70_000}  # a 64-bit length

    async def handler(ws: web.WebSocketResponse) -> None:
        await ws.send_str(json.dumps({"type": "StasisStart", "n": 1}))
        await ws.send_str("not json")
        await ws.send_bytes(b'{"type": "Binary"}')  # ignored, as before
        await ws.send_str(json.dumps(["no", "type"]))
        await ws.send_str(json.dumps({"type": "Mid", "pad": "y" * 300}))  # a 16-bit length
        await ws.send_str(json.dumps(big))
        await ws.close()

    received: list[dict[str, Any]] = []
    seen: list[web.Request] = []
    async with ws_server(handler, seen=seen) as port:
        socket = await connect(port, received)
        await asyncio.wait_for(socket.wait_closed(), 5)
    assert [e["type"] for e in received] == ["StasisStart", "Mid", "Big"]
    assert received[2] == big
    assert "ignoring an event that is not JSON" in caplog.text
    assert seen[0].headers["Authorization"] == "Basic dTpw"
    assert seen[0].query["app"] == "metaflows"


RawScript = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def frame(opcode: int, payload: bytes, *, final: bool = True) -> bytes:
    """A server's frame: unmasked."""
    assert len(payload) < 126
    return bytes([(0x80 if final else 0) | opcode, len(payload)]) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """A client's frame: masked (small ones only)."""
    first, second = await reader.readexactly(2)
    assert second & 0x80, "a client's frames are masked"
    mask = await reader.readexactly(4)
    payload = await reader.readexactly(second & 0x7F)
    return first & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@contextlib.asynccontextmanager
async def raw_server(script: RawScript, *, accept: str | None = None) -> AsyncIterator[int]:
    """A scripted websocket server: it answers the upgrade (with ``accept`` if given, else
    the right key), then runs ``script``."""
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        key = next(
            line.split(":", 1)[1].strip()
            for line in head.split("\r\n")
            if line.lower().startswith("sec-websocket-key:")
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept or accept_key(key)}\r\n\r\n".encode()
        )
        try:
            await script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def read_until_closed(
    script: RawScript, heartbeat: float | None = None
) -> list[dict[str, Any]]:
    """What a scripted server's connection delivered, once it is over."""
    received: list[dict[str, Any]] = []
    async with raw_server(script) as port:
        socket = await connect(port, received, heartbeat=heartbeat)
        await asyncio.wait_for(socket.wait_closed(), 5)
    return received


async def test_a_fragmented_message_is_joined_and_pings_are_answered() -> None:
    pongs: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(0x1, b'{"type": "Fr', final=False))
        writer.write(frame(0x9, b"hi"))  # a ping between the fragments
        writer.write(frame(0x0, b'ag", "n": 2}'))
        opcode, payload = await read_frame(reader)
        assert opcode == 0xA
        pongs.append(payload)
        writer.write(frame(0x8, b"\x03\xe8"))  # close, 1000
        opcode, payload = await read_frame(reader)
        assert (opcode, payload) == (0x8, b"\x03\xe8")  # answered
        await reader.read()

    received = await read_until_closed(script)
    assert received == [{"type": "Frag", "n": 2}]
    assert pongs == [b"hi"]


async def test_a_silent_connection_is_pinged_then_dropped() -> None:
    pinged = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opcode, _ = await read_frame(reader)
        assert opcode == 0x9
        pinged.set()
        await asyncio.sleep(10)  # never answers: a peer that is gone

    async with raw_server(script) as port:
        socket = await connect(port, [], heartbeat=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(socket.wait_closed(), 5)
        assert pinged.is_set()
        assert 0.25 <= loop.time() - started < 2.0


async def test_a_connection_that_talks_is_not_pinged() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for n in range(8):
            writer.write(frame(0x1, json.dumps({"type": "Tick", "n": n}).encode()))
            await asyncio.sleep(0.05)
        writer.write(frame(0x8, b"\x03\xe8"))
        opcode, _ = await read_frame(reader)  # the answer to the close, no ping before it
        assert opcode == 0x8

    received = await read_until_closed(script, heartbeat=0.1)
    assert [e["n"] for e in received] == list(range(8))


async def test_our_close_says_goodbye_without_waiting() -> None:
    goodbye: list[tuple[int, bytes]] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        goodbye.append(await read_frame(reader))
        await asyncio.sleep(10)  # like Asterisk: no answer to a close frame

    async with raw_server(script) as port:
        socket = await connect(port, [])
        socket.close()
        await asyncio.wait_for(socket.wait_closed(), 1)
        assert socket.closed
        for _ in range(100):
            if goodbye:
                break
            await asyncio.sleep(0.01)
    assert goodbye == [(0x8, b"\x03\xe8")]


async def test_a_refused_upgrade_says_its_status() -> None:
    async def never(ws: web.WebSocketResponse) -> None:
        raise AssertionError("not upgraded")

    async with ws_server(never, status=401) as port:
        with pytest.raises(WebSocketRefused) as refused:
            await connect(port, [])
    assert refused.value.status == 401


async def test_an_upgrade_with_a_wrong_accept_key_is_no_websocket() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with raw_server(script, accept="d3Jvbmc=") as port:
        with pytest.raises(ConnectionError, match="accept key"):
            await connect(port, [])


async def test_a_masked_frame_from_the_server_drops_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(bytes([0x81, 0x80 | 2]) + b"\x00\x00\x00\x00{}")
        await reader.read()

    caplog.set_level(logging.ERROR)
    received = await read_until_closed(script)
    assert not received
    assert "a frame no server sends" in caplog.text


async def test_no_answer_to_the_upgrade_within_the_timeout() -> None:
    done = asyncio.Event()
    handlers: list[asyncio.Future[None]] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ended = asyncio.get_running_loop().create_future()
        handlers.append(ended)
        await done.wait()  # silent until the test is over
        writer.close()
        ended.set_result(None)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        with pytest.raises(TimeoutError):
            await open_event_socket(
                "127.0.0.1",
                port,
                "/ari/events?app=metaflows",
                authorization="Basic dTpw",
                receive=lambda event: None,
                timeout=0.2,
                heartbeat=None,
            )
    finally:
        server.close()
        done.set()
        await asyncio.gather(*handlers)
        await server.wait_closed()


@pytest.mark.parametrize("fragmented", [False, True])
async def test_a_message_too_large_drops_the_connection_before_it_is_read(
    caplog: pytest.LogCaptureFixture, fragmented: bool
) -> None:
    """Decoding it would hold the event loop up: a frame announcing more than MAX_MESSAGE is
    refused from its header, a message of many small fragments once they add up to more."""
    from ari_metaflows.ari.events_socket import MAX_MESSAGE

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if fragmented:
            piece = b"x" * 100
            writer.write(frame(0x1, piece, final=False))
            writer.write(frame(0x0, piece, final=False) * (MAX_MESSAGE // 100 + 1))
        else:
            writer.write(bytes([0x81, 127]) + (MAX_MESSAGE + 1).to_bytes(8, "big"))
        await reader.read()

    caplog.set_level(logging.ERROR)
    received = await read_until_closed(script)
    assert not received
    assert ("too large" if fragmented else "a frame no server sends") in caplog.text


async def test_a_long_frame_that_trickles_in_keeps_the_connection_alive() -> None:
    """Bytes arriving are a live peer, even before the frame they belong to is whole: no ping
    and no drop while a large event takes several heartbeats to arrive."""
    payload = json.dumps({"type": "Slow", "pad": "z" * 2_000}).encode()
    message = bytes([0x81, 126]) + len(payload).to_bytes(2, "big") + payload
    pings: list[int] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for at in range(0, len(message), 200):
            writer.write(message[at : at + 200])
            await asyncio.sleep(0.05)  # ~0.5 s for the frame: five heartbeats
        writer.write(frame(0x8, b"\x03\xe8"))
        opcode, _ = await read_frame(reader)
        pings.append(opcode)

    received = await read_until_closed(script, heartbeat=0.1)
    assert [e["type"] for e in received] == ["Slow"]
    assert pings == [0x8]  # the answer to the close, no ping before it


async def test_event_frames_parse_alike_however_the_bytes_are_split() -> None:
    """Every cut of a stream of frames (7-, 16- and 64-bit lengths, a ping, a fragmented
    message with a ping between its fragments), and one byte at a time, gives the same events
    and the same pongs."""
    small = json.dumps({"type": "Small"}).encode()
    mid = json.dumps({"type": "Mid", "pad": "m" * 300}).encode()
    stream = (
        bytes([0x81, len(small)])
        + small
        + bytes([0x81, 126])
        + len(mid).to_bytes(2, "big")
        + mid
        + bytes([0x89, 2])
        + b"hi"
        + bytes([0x01, 4])
        + small[:4]
        + bytes([0x89, 0])
        + bytes([0x80, len(small) - 4])
        + small[4:]
        + bytes([0x81, 127])
        + len(small).to_bytes(8, "big")
        + small
    )
    splits = [[cut, len(stream)] for cut in range(1, len(stream))]
    splits.append(list(range(1, len(stream) + 1)))
    loop = asyncio.get_running_loop()
    for cuts in splits:
        received: list[dict[str, Any]] = []
        socket = EventSocket(received.append, b"", "key")
        transport = RecordingTransport()
        socket.transport = transport
        socket.opened.set_result(None)
        start = 0
        for cut in cuts:
            socket.data_received(stream[start:cut])
            start = cut
        assert [e["type"] for e in received] == ["Small", "Mid", "Small", "Small"], cuts[:2]
        assert len(transport.written) == 2  # a pong for each ping
        assert not transport.closing
    assert loop.is_running()
