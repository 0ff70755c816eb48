"""A small HTTP/1.1 keep-alive client for ARI's REST requests (issue 20).

Why not aiohttp's ``ClientSession.request`` for these: a call makes about nine ARI requests,
and aiohttp spends ~0.23 ms of CPU on each (URL objects, cookie jar, header multidicts,
tracing hooks, a response object with its own stream): about 40 % of what this service spent
per call on a real Asterisk. ARI needs none of that: small requests to one host over
loopback, answers with a Content-Length. This client writes one prebuilt request and parses
one answer per pooled connection (measured: 9.5 -> 6.0 ms of service CPU per call). aiohttp
still carries the event websocket and the file downloads (gateway.py).

Failures: a connection that cannot be made or breaks, or an answer that does not come within
the request timeout (which includes waiting for a free pooled connection), raise ``OSError`` /
``TimeoutError``; the gateway turns them into ``AriUnavailable``. A request written on a reused
idle connection that the server closed meanwhile (Asterisk closes idle keep-alive connections
after http.conf ``session_keep_alive``) gets no byte back: it was never read, so it is sent
once more on a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    reason: str
    body: bytes


class _StaleConnection(Exception):
    """The server closed a reused connection before answering: the request was not read."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one batch of requests in flight at a time, written at
    once, their answers read back in order (HTTP/1.1 pipelining)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._waiters: deque[asyncio.Future[HttpAnswer]] = deque()
        self._received = False  # a byte of the current batch's answers arrived
        self._head: _Head | None = None  # the current answer's head, once it has arrived whole
        self._keep_alive = True
        self._reused = False  # the current batch went out on a connection used before

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._received = True
        self._buffer += data
        waiters = self._waiters
        while waiters:
            try:
                answer = self._parse(eof=False)
            except ValueError as exc:
                self._fail(ConnectionError(f"bad HTTP answer: {exc}"))
                return
            if answer is None:
                return
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(answer)
            if not self._keep_alive and waiters:
                # The server ends the connection after this answer: the requests behind it
                # were never read.
                self._fail(ConnectionResetError("ARI closed the connection mid-batch"))
                return

    def eof_received(self) -> bool | None:
        self._closed_by_peer(eof=True)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed_by_peer(eof=exc is None)

    # -- requests ---------------------------------------------------------------------------

    def send(self, requests: list[bytes], *, reused: bool) -> list[asyncio.Future[HttpAnswer]]:
        assert self.transport is not None
        assert not self._waiters
        self._buffer.clear()
        self._received = False
        self._head = None
        self._reused = reused
        loop = asyncio.get_running_loop()
        waiters = [loop.create_future() for _ in requests]
        self._waiters.extend(waiters)
        self.transport.write(b"".join(requests))
        return waiters

    @property
    def reusable(self) -> bool:
        return not self.closed and self._keep_alive and not self._waiters

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _closed_by_peer(self, *, eof: bool) -> None:
        self.closed = True
        waiters = self._waiters
        if not waiters:
            return
        if eof and self._received:
            with contextlib.suppress(ValueError):
                answer = self._parse(eof=True)  # an answer delimited by the connection's end
                if answer is not None:
                    waiter = waiters.popleft()
                    if not waiter.done():
                        waiter.set_result(answer)
                    if not waiters:
                        return
        if not self._received and self._reused:
            self._fail(_StaleConnection())
        else:
            self._fail(ConnectionResetError("ARI closed the connection mid-answer"))

    def _fail(self, exc: Exception) -> None:
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(exc)
        self.close()

    def _parse(self, *, eof: bool) -> HttpAnswer | None:
        """The next answer, once complete in the buffer (None: more bytes needed), taken out
        of the buffer. The head is parsed once per answer, not again for every later chunk
        of a long body."""
        buffer = self._buffer
        head = self._head
        while head is None:
            head = _parse_head(buffer)
            if head is None:
                return None
            if 100 <= head[0] < 200:  # an interim answer (100 Continue, 103): the real one follows
                del buffer[: head[5]]
                head = None
        self._head = head
        status, reason, length, chunked, keep_alive, start = head
        if status in (204, 304):
            body, end = b"", start
        elif chunked:
            parsed = _dechunk(buffer, start)
            if parsed is None:
                return None
            body, end = parsed
        elif length is not None:
            end = start + length
            if len(buffer) < end:
                return None
            body = bytes(buffer[start:end])
        elif eof:
            body, end = bytes(buffer[start:]), len(buffer)
            keep_alive = False
        else:
            return None  # delimited by the connection's end
        del buffer[:end]
        self._head = None
        self._keep_alive = keep_alive
        return HttpAnswer(status, reason, body)


# status, reason, Content-Length, chunked, keep-alive, where the body starts
_Head = tuple[int, str, int | None, bool, bool, int]


def _parse_head(buffer: bytearray) -> _Head | None:
    """An answer's status line and headers (None until they have arrived whole)."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ValueError(lines[0][:80])
    length: int | None = None
    chunked = False
    keep_alive = version == "HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif name == "connection":
            token = value.strip().lower()
            keep_alive = token == "keep-alive" or (keep_alive and token != "close")
    return int(code), reason, length, chunked, keep_alive, end + 4


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """The body of a complete chunked answer and where the answer ends (None while
    incomplete)."""
    body = bytearray()
    at = start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";", 1)[0].strip() or b"0", 16)
        at = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", at - 2)  # no trailers: the next CRLF
            return (bytes(body), trailer_end + 4) if trailer_end >= 0 else None
        if len(buffer) < at + size + 2:
            return None
        body += buffer[at : at + size]
        at += size + 2


def _forget(waiters: list[asyncio.Future[HttpAnswer]]) -> None:
    """The batch's answers are no longer awaited: cancel those still to come and take the
    errors of the others (an error nobody takes is reported by the event loop)."""
    for waiter in waiters:
        if not waiter.done():
            waiter.cancel()
        elif not waiter.cancelled():
            waiter.exception()


class KeepAliveClient:
    """Requests to one ``host:port`` over a pool of at most ``limit`` keep-alive connections."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        authorization: str,
        request_timeout: float,
        connect_timeout: float,
        limit: int = 100,
        tls: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self.tls = tls
        self._head = f"Host: {host}:{port}\r\nAuthorization: {authorization}\r\n"
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(limit)
        self._all: set[_Connection] = set()
        self.closed = False
        # Request deadlines, checked by one coarse sweep instead of a timer per request
        # (asyncio.timeout's call_at and cancel were ~6 % of the service's CPU per call).
        self._deadlines: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    async def request(
        self, method: str, target: str, body: bytes = b"", content_type: str = ""
    ) -> HttpAnswer:
        """``method`` ``target`` (path and query, already encoded); the whole answer."""
        (outcome,) = await self.request_many([(method, target, body, content_type)])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def request_many(
        self, requests: Sequence[tuple[str, str, bytes, str]]
    ) -> list[HttpAnswer | Exception]:
        """Several requests, ``(method, target, body, content_type)`` each, written at once on
        one connection and answered in order (HTTP/1.1 pipelining: the server reads them one
        after the other). One write and one wake-up of the server instead of one each: on
        loopback a write costs more than the request's parsing. Each request's answer, or
        the error that stopped it (OSError, TimeoutError: those behind a broken one fail too)."""
        if self.closed:
            raise ConnectionError("client closed")
        if not requests:
            return []
        data = [self._encode(*request) for request in requests]
        # Each request keeps the time it had alone: Asterisk runs them one after the other.
        timeout = self.request_timeout * len(data)
        task = asyncio.current_task()
        assert task is not None
        if task in self._deadlines:  # one request at a time per task; a nested one is exact
            async with asyncio.timeout(timeout):
                return await self._send(data)
        # Cancellations the task already had (a clean-up that absorbed one): ours is the
        # one above them, as asyncio.timeout counts.
        cancelling = task.cancelling()
        self._watch(task, timeout)
        try:
            return await self._send(data)
        except asyncio.CancelledError:
            if task in self._expired and task.uncancel() <= cancelling:
                raise TimeoutError(f"no answer from ARI within {timeout:g} s") from None
            raise
        finally:
            self._deadlines.pop(task, None)
            self._expired.discard(task)

    def _encode(self, method: str, target: str, body: bytes, content_type: str) -> bytes:
        head = f"{method} {target} HTTP/1.1\r\n{self._head}"
        if body or method in ("POST", "PUT"):
            head += f"Content-Length: {len(body)}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        return (head + "\r\n").encode("latin-1") + body

    async def _send(self, data: list[bytes]) -> list[HttpAnswer | Exception]:
        async with self._slots:  # waiting for a free connection counts against the deadline
            for attempt in range(2):
                if self.closed:  # closed while this request waited for a slot
                    raise ConnectionError("client closed")
                connection, reused = await self._connection(fresh=attempt > 0)
                if self.closed:  # closed while it connected
                    self._discard(connection)
                    raise ConnectionError("client closed")
                waiters = connection.send(data, reused=reused)
                outcomes: list[HttpAnswer | Exception] = []
                try:
                    for waiter in waiters:
                        try:
                            outcomes.append(await waiter)
                        except OSError as exc:
                            outcomes.append(exc)
                except _StaleConnection:
                    self._discard(connection)
                    _forget(waiters)
                    continue  # on a fresh connection, unless the client closed meanwhile
                except BaseException:
                    self._discard(connection)  # cancelled mid-answer
                    _forget(waiters)
                    raise
                if connection.reusable and not self.closed:
                    self._idle.append(connection)
                else:
                    self._discard(connection)
                return outcomes
        raise ConnectionResetError("ARI closed the connection twice before answering")

    def _watch(self, task: asyncio.Task[Any], timeout: float) -> None:
        """The task's request ends with TimeoutError once its deadline has passed: at most a
        sweep interval (a twentieth of the timeout, ≤ 0.25 s) late."""
        loop = asyncio.get_running_loop()
        self._deadlines[task] = loop.time() + timeout
        if self._sweeper is None:
            self._sweeper = loop.call_later(self._interval, self._sweep)

    @property
    def _interval(self) -> float:
        return min(0.25, self.request_timeout / 20)

    def _sweep(self) -> None:
        self._sweeper = None
        deadlines = self._deadlines
        if not deadlines:
            return
        now = asyncio.get_running_loop().time()
        for task, deadline in list(deadlines.items()):
            if deadline <= now:
                del deadlines[task]
                self._expired.add(task)
                task.cancel()
        if deadlines:
            self._sweeper = asyncio.get_running_loop().call_later(self._interval, self._sweep)

    async def _connection(self, *, fresh: bool) -> tuple[_Connection, bool]:
        idle = self._idle
        while idle and not fresh:
            connection = idle.pop()  # the most recently used: the least likely to be closed
            if not connection.closed:
                return connection, True
            self._all.discard(connection)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            _, connection = await loop.create_connection(
                _Connection, self.host, self.port, ssl=True if self.tls else None
            )
        self._all.add(connection)
        return connection, False

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._all.discard(connection)

    async def close(self) -> None:
        """New requests fail at once; those in flight end with their connection (or their
        deadline: the sweep goes on while any is watched)."""
        self.closed = True
        if self._sweeper is not None and not self._deadlines:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in list(self._all):
            connection.close()
        self._all.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports close
