"""The ARI event websocket, read by a bare protocol (issue 20).

Why not aiohttp's websocket client for this one connection: each event went through its frame
reader, a message queue, a wake-up of the reader task and a heartbeat reset before our code saw
it, ~45 µs of CPU per event on the benchmark machine, about a third of what an event costs the
service. Here frames are parsed as the bytes arrive and each text message is decoded and handed
to ``receive`` in the same callback. aiohttp still opens ARI's other websockets and downloads.

What Asterisk sends: one unmasked text frame per event (fragments are joined all the same),
pings (answered), a close frame (answered, then the connection ends). Our heartbeat ticks every
``heartbeat`` seconds: a tick with nothing arrived since the one before sends a ping, and a
connection still silent half a heartbeat after the ping is dropped, which ends
``wait_closed`` (the caller reconnects).

Errors while opening: ``WebSocketRefused`` (with ``status``: Asterisk answered the upgrade with
401, 404…), ``OSError`` / ``TimeoutError`` (not reachable, no answer within ``timeout``),
``ConnectionError`` (an answer that is no websocket upgrade).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import ssl
import struct
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
# An event this large is no event (Asterisk's are a few KiB): the connection is dropped rather
# than the loop held up decoding it (~3 ms of json.loads for 256 KiB of snapshots).
MAX_MESSAGE = 256 * 1024


class WebSocketRefused(Exception):
    """The server answered the upgrade with another status than 101."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"websocket upgrade refused: {status} {reason}".rstrip())
        self.status = status


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer to ``key``."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One final frame from a client: masked, as RFC 6455 requires (ours are small control
    frames)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return head + mask + masked


class EventSocket(asyncio.Protocol):
    """One open event websocket. Make it with ``open_event_socket``."""

    def __init__(self, receive: Callable[[dict[str, Any]], None], request: bytes, key: str) -> None:
        self._receive = receive
        self._request = request
        self._key = key
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self._closed: asyncio.Future[None] = loop.create_future()
        self._fragments: list[bytes] = []
        self._fragmented = 0  # the opcode of the message being put together, 0: none
        self._fragmented_size = 0  # its bytes so far (no sum over many tiny fragments)
        self._heard = True  # bytes arrived since the last heartbeat tick
        self._pinged = False
        self._heartbeat: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._heard = True  # bytes arrive: alive, even in the middle of a long frame
        self._buffer += data
        if not self.opened.done() and not self._upgrade():
            return
        self._frames()

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if not self.opened.done():
            self.opened.set_exception(
                exc or ConnectionResetError("the connection closed during the websocket upgrade")
            )
        if not self._closed.done():
            self._closed.set_result(None)

    # -- the connection ------------------------------------------------------------------------

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    @property
    def closed(self) -> bool:
        return self.transport is None

    def close(self) -> None:
        """Say goodbye (Asterisk does not answer close frames: no wait) and close."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if self.opened.done():
                transport.write(client_frame(_CLOSE, struct.pack("!H", 1000)))
            transport.close()

    def start_heartbeat(self, interval: float | None) -> None:
        if interval:
            loop = asyncio.get_running_loop()
            self._heartbeat = loop.call_later(interval, self._beat, interval)

    def _beat(self, interval: float) -> None:
        self._heartbeat = None
        if self.transport is None:
            return
        loop = asyncio.get_running_loop()
        if self._heard:
            self._heard, self._pinged = False, False
            self._heartbeat = loop.call_later(interval, self._beat, interval)
        elif not self._pinged:
            self._pinged = True
            self.transport.write(client_frame(_PING))
            self._heartbeat = loop.call_later(interval / 2, self._beat, interval)
        else:
            logger.warning("ARI websocket: no answer to a ping within %.1f s", interval / 2)
            self.transport.abort()

    # -- reading -------------------------------------------------------------------------------

    def _upgrade(self) -> bool:
        """Take the upgrade answer from the buffer; False while incomplete or refused."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > 65536:
                self._fail_open(ConnectionError("no websocket upgrade answer"))
            return False
        lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        _, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if code != "101":
            status = int(code) if code.isdigit() else 0
            self._fail_open(WebSocketRefused(status, reason))
            return False
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("sec-websocket-accept") != accept_key(self._key):
            self._fail_open(ConnectionError("websocket upgrade with a wrong accept key"))
            return False
        self.opened.set_result(None)
        return True

    def _fail_open(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def _frames(self) -> None:
        buffer = self._buffer
        size = len(buffer)
        at = 0
        while size - at >= 2 and self.transport is not None and not self.transport.is_closing():
            first, second = buffer[at], buffer[at + 1]
            length = second & 0x7F
            head = 2
            if length == 126:
                if size - at < 4:
                    break
                length = int.from_bytes(buffer[at + 2 : at + 4], "big")
                head = 4
            elif length == 127:
                if size - at < 10:
                    break
                length = int.from_bytes(buffer[at + 2 : at + 10], "big")
                head = 10
            if second & 0x80 or length > MAX_MESSAGE:  # a server never masks (RFC 6455 §5.1)
                logger.error("ARI websocket: a frame no server sends; dropping the connection")
                self.transport.abort()
                break
            if size - at < head + length:
                break
            payload = bytes(buffer[at + head : at + head + length])
            at += head + length
            self._frame(bool(first & 0x80), first & 0x0F, payload)
        del buffer[:at]

    def _frame(self, final: bool, opcode: int, payload: bytes) -> None:
        if opcode in (_TEXT, _BINARY):
            if final:
                self._message(opcode, payload)
            else:
                self._fragmented, self._fragments = opcode, [payload]
                self._fragmented_size = len(payload)
        elif opcode == _CONTINUATION and self._fragmented:
            self._fragments.append(payload)
            self._fragmented_size += len(payload)
            if self._fragmented_size > MAX_MESSAGE:
                logger.error("ARI websocket: a message too large; dropping the connection")
                if self.transport is not None:
                    self.transport.abort()
            elif final:
                message, opcode = b"".join(self._fragments), self._fragmented
                self._fragmented, self._fragments = 0, []
                self._message(opcode, message)
        elif opcode == _PING and self.transport is not None:
            self.transport.write(client_frame(_PONG, payload))
        elif opcode == _CLOSE and self.transport is not None:
            self.transport.write(client_frame(_CLOSE, payload[:2]))
            self.transport.close()

    def _message(self, opcode: int, payload: bytes) -> None:
        if opcode != _TEXT:
            return
        try:
            event = json.loads(payload)
        except ValueError:
            logger.error("ignoring an event that is not JSON")
            return
        if isinstance(event, dict) and "type" in event:
            try:
                self._receive(event)
            except Exception:  # receive must not raise; if it does, the socket goes on
                logger.exception("an event could not be handed over")


async def open_event_socket(
    host: str,
    port: int,
    target: str,
    *,
    authorization: str,
    receive: Callable[[dict[str, Any]], None],
    timeout: float,
    heartbeat: float | None,
    tls: bool = False,
) -> EventSocket:
    """Connect, upgrade ``target`` (path and query) to a websocket and start reading: every
    text message that is a JSON object with a ``type`` goes to ``receive``."""
    loop = asyncio.get_running_loop()
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: {authorization}\r\n\r\n"
    ).encode("latin-1")
    made: list[EventSocket] = []

    def protocol() -> EventSocket:
        made.append(EventSocket(receive, request, key))
        return made[0]

    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(
                protocol, host, port, ssl=ssl.create_default_context() if tls else None
            )
            await made[0].opened
    except BaseException:
        for socket in made:
            if socket.opened.done():
                if not socket.opened.cancelled():
                    socket.opened.exception()  # taken: a refusal that lost to the timeout
            else:
                socket.opened.cancel()  # nobody waits for it any more
            if socket.transport is not None:
                socket.transport.abort()
        raise
    made[0].start_heartbeat(heartbeat)
    return made[0]
