"""The keep-alive HTTP client of ARI requests (ari/http.py) against a real loopback server
whose behaviour each test scripts: reuse, a server closing idle connections, answers cut
short or never sent, chunked answers, the pool limit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ari_metaflows.ari.gateway import AriError, AriGateway, AriTimeouts, AriUnavailable, Gone
from ari_metaflows.ari.gateway import _HeaderAuthHttpClient as HeaderAuthHttpClient
from ari_metaflows.ari.http import HttpAnswer, KeepAliveClient, _Connection

from ..helpers.recording_transport import RecordingTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class Server:
    """A loopback server: ``handler(reader, writer, connection_number)`` per connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            await self.handler(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went, or the test is over: the handler's end, not an error
        finally:
            self.writers.discard(writer)
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                head += await reader.readexactly(int(line.split(b":")[1]))
        self.requests.append(head)
        return head


@contextlib.asynccontextmanager
async def client_for(server: Server, **options: float) -> AsyncIterator[KeepAliveClient]:
    client = KeepAliveClient(
        "127.0.0.1",
        server.port,
        authorization="Basic dTpw",
        request_timeout=options.get("request_timeout", 2.0),
        connect_timeout=1.0,
        limit=int(options.get("limit", 100)),
    )
    try:
        yield client
    finally:
        await client.close()


async def test_requests_reuse_one_connection_and_carry_credentials() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await server.read_request(reader)
            writer.write(OK)

    async with Server(handler) as server, client_for(server) as client:
        for n in range(5):
            answer = await client.request("POST", f"/ari/channels/c{n}/answer?x=1")
            assert (answer.status, answer.body) == (200, b"{}")
    assert server.connections == 1
    first = server.requests[0].split(b"\r\n")
    assert first[0] == b"POST /ari/channels/c0/answer?x=1 HTTP/1.1"
    assert b"Authorization: Basic dTpw" in first
    assert b"Content-Length: 0" in first


async def test_an_idle_connection_the_server_closed_is_replaced_without_losing_the_request() -> (
    None
):
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.read_request(reader)
        writer.write(OK)
        await writer.drain()
        if n == 1:
            # Like Asterisk's session_keep_alive: drop the idle connection without a word,
            # after the next request is already on its way (it is never read).
            await reader.read(1)
            return
        while True:
            await server.read_request(reader)
            writer.write(OK)

    async with Server(handler) as server, client_for(server) as client:
        assert (await client.request("GET", "/ari/bridges")).status == 200
        assert (await client.request("POST", "/ari/bridges/b1")).status == 200
    assert server.connections == 2
    assert [r.split(b"\r\n")[0] for r in server.requests] == [
        b"GET /ari/bridges HTTP/1.1",
        b"POST /ari/bridges/b1 HTTP/1.1",  # once: the first connection never read it whole
    ]


async def test_an_answer_cut_short_is_an_error_not_a_retry() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{")
        await writer.drain()

    async with Server(handler) as server, client_for(server) as client:
        with pytest.raises(ConnectionResetError):
            await client.request("POST", "/ari/channels/c1/hangup")
    assert len(server.requests) == 1  # a request Asterisk may have acted on is not repeated


async def test_no_answer_within_the_request_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        await asyncio.sleep(10)

    async with Server(handler) as server, client_for(server, request_timeout=0.2) as client:
        with pytest.raises(TimeoutError):
            await client.request("GET", "/ari/asterisk/info")


async def test_chunked_and_connection_close_answers() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.read_request(reader)
        if n == 1:
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n"
            )
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\nno bridge")
        else:
            writer.write(b"HTTP/1.0 204 No Content\r\n\r\n")

    async with Server(handler) as server, client_for(server) as client:
        assert (await client.request("GET", "/ari/bridges")).body == b"[1,2]"
        gone = await client.request("GET", "/ari/bridges/x")
        assert (gone.status, gone.reason, gone.body) == (404, "Not Found", b"no bridge")
        assert (await client.request("DELETE", "/ari/bridges/y")).status == 204
    assert server.connections == 2  # "Connection: close" was honoured


async def test_the_pool_limit_holds_requests_back_and_counts_against_their_timeout() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await server.read_request(reader)
            await release.wait()
            writer.write(OK)

    async with Server(handler) as server, client_for(server, limit=2) as client:
        first = [asyncio.create_task(client.request("GET", f"/ari/x{n}")) for n in range(2)]
        await asyncio.sleep(0.1)
        client.request_timeout = 0.2
        with pytest.raises(TimeoutError):
            await client.request("GET", "/ari/third")  # waited for a free connection
        release.set()
        assert [a.status for a in await asyncio.gather(*first)] == [200, 200]
    assert server.connections == 2


async def test_a_batch_goes_out_in_one_write_and_its_answers_come_back_in_order() -> None:
    reads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        data = await reader.read(65536)  # everything the client wrote, in one read
        reads.append(data)
        assert data.count(b" HTTP/1.1\r\n") == 3
        # Answered one by one, as Asterisk does: a body, a chunked body, an empty answer.
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{"a":1}')
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n"
            b"HTTP/1.1 204 No Content\r\n\r\n"
        )
        while True:
            await server.read_request(reader)
            writer.write(OK)

    async with Server(handler) as server, client_for(server) as client:
        outcomes = await client.request_many(
            [
                ("POST", "/ari/channels/a/answer", b"", ""),
                ("POST", "/ari/bridges?bridgeId=b", b"", ""),
                ("POST", "/ari/bridges/b/addChannel?channel=a", b"", ""),
            ]
        )
        assert [(o.status, o.body) for o in outcomes if not isinstance(o, Exception)] == [
            (200, b'{"a":1}'),
            (200, b"[]"),
            (204, b""),
        ]
        assert (await client.request("GET", "/ari/bridges")).body == b"{}"  # reused after
    assert server.connections == 1
    assert [line.split(b" ")[1] for line in reads[0].split(b"\r\n") if b"HTTP/1.1" in line] == [
        b"/ari/channels/a/answer",
        b"/ari/bridges?bridgeId=b",
        b"/ari/bridges/b/addChannel?channel=a",
    ]


async def test_a_batch_cut_short_by_the_server_fails_only_what_was_not_answered() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await writer.drain()

    async with Server(handler) as server, client_for(server) as client:
        first, second, third = await client.request_many(
            [("POST", f"/ari/channels/c{n}/hangup", b"", "") for n in range(3)]
        )
        assert not isinstance(first, Exception)
        assert first.status == 204
        assert isinstance(second, ConnectionResetError)
        assert isinstance(third, ConnectionResetError)
        # Not sent again: the server may have read them before it closed.
    assert server.connections == 1


async def test_a_batch_on_a_connection_the_server_dropped_is_sent_again_whole() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.read_request(reader)
        writer.write(OK)
        await writer.drain()
        if n == 1:
            await reader.read(1)  # the idle connection dropped as the batch arrives
            return
        while True:
            await server.read_request(reader)
            writer.write(OK)

    async with Server(handler) as server, client_for(server) as client:
        assert (await client.request("GET", "/ari/bridges")).status == 200
        outcomes = await client.request_many(
            [("POST", "/ari/x", b"", ""), ("POST", "/ari/y", b"", "")]
        )
        assert [getattr(o, "status", o) for o in outcomes] == [200, 200]
    assert server.connections == 2
    assert [r.split(b"\r\n")[0] for r in server.requests] == [
        b"GET /ari/bridges HTTP/1.1",
        b"POST /ari/x HTTP/1.1",
        b"POST /ari/y HTTP/1.1",
    ]


async def test_an_interim_answer_is_not_taken_for_the_final_one() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        await server.read_request(reader)
        writer.write(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}"
        )
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + OK)
        while True:
            await server.read_request(reader)
            writer.write(OK)

    async with Server(handler) as server, client_for(server) as client:
        first, second = await client.request_many(
            [("GET", "/ari/a", b"", ""), ("GET", "/ari/b", b"", "")]
        )
        assert getattr(first, "status", first) == 404
        assert getattr(second, "status", second) == 200
        assert (await client.request("GET", "/ari/c")).status == 200  # nothing left over
    assert server.connections == 1


async def test_a_batch_has_the_time_of_its_requests_one_by_one() -> None:
    """Asterisk runs a batch's requests one after the other: three that take 0.15 s each
    fit in three request timeouts of 0.2 s, not in one."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await server.read_request(reader)
            await asyncio.sleep(0.15)
            writer.write(OK)

    async with Server(handler) as server, client_for(server, request_timeout=0.2) as client:
        outcomes = await client.request_many([("GET", f"/ari/{n}", b"", "") for n in range(3)])
        assert [getattr(o, "status", o) for o in outcomes] == [200, 200, 200]
        assert await client.request_many([]) == []


async def test_the_gateway_reports_an_unreachable_asterisk_as_unavailable() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)  # and hang up without an answer

    async with Server(handler) as server:
        gateway = AriGateway(
            client=_NoSwagger(server.port),
            http=_http(),
            app="metaflows",
            base_url=f"http://127.0.0.1:{server.port}",
        )
        try:
            with pytest.raises(AriUnavailable, match=r"channels\.answer"):
                await gateway.answer("c1")
        finally:
            await gateway.close()


class _Declared:
    def __init__(self, method: str, path: str, nickname: str, params: dict[str, str]) -> None:
        self.uri = f"http://127.0.0.1:1/ari{path}"
        self.json = {
            "httpMethod": method,
            "nickname": nickname,
            "parameters": [
                {"name": name, "paramType": kind, "required": kind == "path"}
                for name, kind in params.items()
            ],
        }


_DECLARED = {
    "channels": {
        "answer": ("POST", "/channels/{channelId}/answer", {"channelId": "path"}),
        "hangup": (
            "DELETE",
            "/channels/{channelId}",
            {"channelId": "path", "reason": "query"},
        ),
    },
    "bridges": {
        "addChannel": (
            "POST",
            "/bridges/{bridgeId}/addChannel",
            {"bridgeId": "path", "channel": "query", "absorbDTMF": "query"},
        ),
        "destroy": ("DELETE", "/bridges/{bridgeId}", {"bridgeId": "path"}),
    },
}


class _Api:
    def __init__(self, resource: str) -> None:
        self.resource = resource

    def get_operation(self, name: str) -> _Declared | None:
        found = _DECLARED[self.resource].get(name)
        return _Declared(found[0], found[1], name, found[2]) if found else None


class _Repository:
    def __init__(self, resource: str) -> None:
        self.api = _Api(resource)


class _NoSwagger:
    """What the gateway reads of aioari's client: the declared operations."""

    def __init__(self, port: int) -> None:
        self.repositories = {name: _Repository(name) for name in _DECLARED}

    async def close(self) -> None:
        return None


async def test_the_gateway_turns_each_answer_of_a_batch_into_its_outcome() -> None:
    answers = [
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}",
        b'HTTP/1.1 400 Bad Request\r\nContent-Length: 33\r\n\r\n{"message": "Channel not found"}\n',
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}",
    ]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        for answer in answers:
            await server.read_request(reader)
            writer.write(answer)

    async with Server(handler) as server:
        gateway = AriGateway(
            client=_NoSwagger(server.port),
            http=_http(),
            app="metaflows",
            base_url=f"http://127.0.0.1:{server.port}",
        )
        try:
            answered, hung_up, added, destroyed = await gateway.in_order(
                gateway.answer_request("a"),
                gateway.hangup_request("b"),  # already gone: fine
                gateway.add_to_bridge_request("br", ["a"], absorb_dtmf=True),
                gateway.destroy_bridge_request("br"),
            )
        finally:
            await gateway.close()
    assert answered is None
    assert hung_up is None
    assert isinstance(added, Gone)  # the channel left meanwhile
    assert isinstance(destroyed, AriError)
    assert not isinstance(destroyed, Gone)
    assert destroyed.status == 500
    assert gateway.requests == 4
    assert [r.split(b"\r\n")[0] for r in server.requests] == [
        b"POST /ari/channels/a/answer HTTP/1.1",
        b"DELETE /ari/channels/b?reason=normal HTTP/1.1",
        b"POST /ari/bridges/br/addChannel?channel=a&absorbDTMF=true HTTP/1.1",
        b"DELETE /ari/bridges/br HTTP/1.1",
    ]


def _http() -> HeaderAuthHttpClient:
    return HeaderAuthHttpClient("u", "p", AriTimeouts(request=1.0, connect=1.0))


async def test_a_cancelled_request_is_cancelled_not_timed_out_and_its_connection_dropped() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            await server.read_request(reader)
            if n == 1:
                await asyncio.sleep(10)  # the first connection never answers
            writer.write(OK)

    async with Server(handler) as server, client_for(server, request_timeout=5.0) as client:
        waiting = asyncio.create_task(client.request("GET", "/ari/slow"))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        # The connection with an answer still owed is not reused: a new one answers.
        assert (await client.request("GET", "/ari/fast")).status == 200
        assert client._deadlines == {}
    assert server.connections == 2


async def test_requests_caught_by_close_fail_at_once_and_leave_no_connection_open() -> None:
    """A websocket loss closes the gateway while call tasks still use it: a request in flight
    ends with its connection, one waiting for a pool slot fails as soon as it gets one, and
    nothing goes back to the closed client's pool."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await server.read_request(reader)
            await asyncio.sleep(0.3)  # a slow Asterisk
            writer.write(OK)

    async with Server(handler) as server, client_for(server, limit=1) as client:
        in_flight = asyncio.create_task(client.request("GET", "/ari/first"))
        waiting = asyncio.create_task(client.request("GET", "/ari/second"))
        await asyncio.sleep(0.1)
        await client.close()
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(in_flight, 1)
        with pytest.raises(ConnectionError, match="client closed"):
            await asyncio.wait_for(waiting, 0.2)  # not after the slow answer, not never
        assert not client._all
        assert not client._idle
        with pytest.raises(ConnectionError, match="client closed"):
            await client.request("GET", "/ari/third")
    assert len(server.requests) == 1  # the second never went out


async def test_a_timeout_in_a_clean_up_that_absorbed_a_cancellation_is_a_timeout() -> None:
    """Clean-up code that caught a CancelledError (the task's count is 1) and goes on with
    ARI requests must see an unanswered one as a timeout, as asyncio.timeout would say."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        await asyncio.sleep(10)

    async def clean_up(client: KeepAliveClient) -> str:
        task = asyncio.current_task()
        assert task is not None
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            assert task.cancelling() == 1
            try:
                await client.request("DELETE", "/ari/bridges/b1")
            except TimeoutError:
                return "timed out"
        return "not cancelled"

    async with Server(handler) as server, client_for(server, request_timeout=0.2) as client:
        task = asyncio.create_task(clean_up(client))
        await asyncio.sleep(0.05)
        task.cancel()
        assert await asyncio.wait_for(task, 3) == "timed out"


async def test_answers_parse_alike_however_the_bytes_are_split() -> None:
    """TCP may cut a stream anywhere: every cut of a pipelined stream (an interim answer, a
    sized body, a 204, a chunked body with an extension and a trailer, an error), and one
    byte at a time, gives the same answers."""

    stream = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        b"HTTP/1.1 204 No Content\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n"
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"
    )
    expected = [
        HttpAnswer(200, "OK", b"hello"),
        HttpAnswer(204, "No Content", b""),
        HttpAnswer(200, "OK", b"abcde"),
        HttpAnswer(404, "Not Found", b"no"),
    ]
    splits = [[cut, len(stream)] for cut in range(1, len(stream))]
    splits.append(list(range(1, len(stream) + 1)))
    for cuts in splits:
        connection = _Connection()
        connection.connection_made(RecordingTransport())
        waiters = connection.send([b"GET / HTTP/1.1\r\n\r\n"] * 4, reused=False)
        start = 0
        for cut in cuts:
            connection.data_received(stream[start:cut])
            start = cut
        assert [w.result() for w in waiters] == expected, cuts[:2]
        assert connection.reusable
