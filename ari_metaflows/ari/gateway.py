"""A small typed gateway over aioari: the only place that talks to the swagger client.

Why a facade: aioari (0.10.2) is unmaintained and untyped, wants booleans as strings, breaks on
``None`` parameters, puts Basic credentials in the websocket URL and has no reconnect. Here:
credentials go in an ``Authorization`` header on every request and on the websocket, the
event websocket is our own reader with a heartbeat (events_socket.py), requests have explicit
timeouts and may go several in one write (``in_order``), and a 404 (or a bridge's 400 "Channel
not found") becomes ``Gone`` — a channel hanging up while we act on it is normal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aioari
import aiohttp
from aioswagger11.http_client import AsynchronousHttpClient

from ..errors import AriError as AriError
from ..errors import AriUnavailable as AriUnavailable
from ..errors import Gone as Gone
from ..metrics import mark_ari_request
from .events_socket import EventSocket, open_event_socket
from .http import HttpAnswer, KeepAliveClient
from .stored_file import open_stored_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AriTimeouts:
    """Explicit time limits for talking to Asterisk (seconds)."""

    connect: float = 5.0
    request: float = 5.0
    heartbeat: float = 10.0


class _HeaderAuthHttpClient(AsynchronousHttpClient):  # type: ignore[misc]
    """aioari's HTTP client, with credentials in a header and a sane websocket."""

    def __init__(self, username: str, password: str, timeouts: AriTimeouts) -> None:
        # Not calling the parent constructor: it builds a session with the removed loop=.
        self.authenticator = None
        self.websockets: set[EventSocket] = set()
        self.timeouts = timeouts
        self.session = aiohttp.ClientSession(
            headers={"Authorization": aiohttp.encode_basic_auth(username, password)},
            # sock_connect, not connect: waiting for a pooled connection during a burst is
            # part of the request's time, not a failure to reach Asterisk.
            timeout=aiohttp.ClientTimeout(total=timeouts.request, sock_connect=timeouts.connect),
        )

    async def close(self) -> None:
        for socket in list(self.websockets):
            socket.close()
        await self.session.close()


@dataclass(frozen=True)
class _Operation:
    """One declared ARI operation: what a request needs, without the swagger client."""

    method: str
    uri: str  # with {placeholders} for the path parameters
    path: frozenset[str]
    query: frozenset[str]
    required: frozenset[str]
    name: str
    target: str  # the uri's path (with the placeholders), what goes on the request line

    @classmethod
    def of(cls, uri: str, declared: Mapping[str, Any]) -> _Operation:
        parameters = declared.get("parameters", [])
        return cls(
            method=str(declared["httpMethod"]),
            uri=uri,
            path=frozenset(p["name"] for p in parameters if p["paramType"] == "path"),
            query=frozenset(p["name"] for p in parameters if p["paramType"] == "query"),
            required=frozenset(p["name"] for p in parameters if p.get("required")),
            name=str(declared.get("nickname", "")),
            target=urllib.parse.urlsplit(uri).path,
        )

    def request(self, params: Mapping[str, Any]) -> tuple[str, str, dict[str, str]]:
        """(method, path, query) for these arguments (None means absent)."""
        uri = self.target
        query: dict[str, str] = {}
        for name, value in params.items():
            if value is None:
                continue
            if name in self.path:
                uri = uri.replace("{" + name + "}", _quote(str(value)))
            elif name in self.query:
                query[name] = str(value)
            else:
                raise TypeError(f"{self.name} has no parameter {name!r}")
        missing = [n for n in self.required if params.get(n) is None]
        if missing:
            raise TypeError(f"{self.name} needs {', '.join(sorted(missing))}")
        return self.method, uri, query


_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*\Z")


def _quote(text: str) -> str:
    """``quote_plus``, without its cost for the ids and words most arguments are."""
    return text if _PLAIN.match(text) else urllib.parse.quote_plus(text)


def _flag(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True, slots=True)
class AriRequest:
    """One ARI request, ready to go: built by the gateway's ``*_request`` methods, sent alone
    by the typed method of the same name (where one exists) or with others by
    ``AriGateway.in_order``."""

    label: str  # resource.operation, for errors
    method: str
    target: str  # path and encoded query
    parse: bool = True  # decode the JSON answer (a snapshot nobody reads is not worth it)
    # Asterisk answers a bridge's addChannel/removeChannel with 400 "Channel not found" (not
    # 404, which means the bridge) when a channel hung up meanwhile: that is ``Gone`` too.
    channel_missing_is_gone: bool = False
    gone_is_fine: bool = False  # a 404 means done (hang up, destroy): no error


class AriGateway:
    """Typed ARI operations the engine uses. Create with ``await AriGateway.connect(...)``."""

    def __init__(
        self, client: Any, http: _HeaderAuthHttpClient, app: str, base_url: str = ""
    ) -> None:
        self._client = client
        self._http = http
        self.app = app
        self._base_url = base_url.rstrip("/")
        self._operations: dict[tuple[str, str], _Operation] = {}
        self.requests = 0  # ARI requests made (the benchmark's per-call figure)
        origin = urllib.parse.urlsplit(self._base_url or "http://127.0.0.1")
        self._rest = KeepAliveClient(
            origin.hostname or "127.0.0.1",
            origin.port or (443 if origin.scheme == "https" else 80),
            authorization=http.session.headers["Authorization"],
            request_timeout=http.timeouts.request,
            connect_timeout=http.timeouts.connect,
            tls=origin.scheme == "https",
        )

    @classmethod
    async def connect(
        cls, base_url: str, username: str, password: str, app: str, timeouts: AriTimeouts
    ) -> AriGateway:
        """Load Asterisk's API declarations; closes everything again if that fails."""
        http = _HeaderAuthHttpClient(username, password, timeouts)
        client = aioari.Client(base_url + "/", http)
        try:
            await client.init()
        except BaseException:
            await http.close()
            raise
        return cls(client, http, app, base_url)

    @property
    def websockets(self) -> set[EventSocket]:
        """The open event websockets (one while ``run_events`` runs)."""
        return self._http.websockets

    async def run_events(self, receive: Callable[[dict[str, Any]], None]) -> None:
        """Open the event websocket for our app and hand every event to ``receive`` until it
        closes. Our own reader, not aioari's ``Client.run``: that one formats a debug line and
        copies its listener lists for every event, and awaits each listener."""
        path = urllib.parse.urlsplit(self._operation("events", "eventWebsocket").uri).path
        rest = self._rest
        socket = await open_event_socket(
            rest.host,
            rest.port,
            f"{path}?app={_quote(self.app)}",
            authorization=self._http.session.headers["Authorization"],
            receive=receive,
            timeout=self._http.timeouts.connect,
            heartbeat=self._http.timeouts.heartbeat,
            tls=rest.tls,
        )
        self._http.websockets.add(socket)
        try:
            await socket.wait_closed()
        finally:
            self._http.websockets.discard(socket)
            socket.close()

    @property
    def timeouts(self) -> AriTimeouts:
        return self._http.timeouts

    async def close(self) -> None:
        await self._rest.close()
        await self._client.close()
        await self._http.close()

    def _operation(self, resource: str, operation: str) -> _Operation:
        """The operation as Asterisk declared it (method, path, parameters), compiled once.
        Not ``client.<resource>.<operation>``: aioari's ``Repository.__getattr__`` builds a
        new class on every request and wraps answers in model objects we never use; and
        aioswagger's operation formats a debug line (urlencoding every argument) and walks
        the declared parameters on every request. The declarations still come from Asterisk
        (``/ari/api-docs``), so an operation or parameter it lacks fails here, at once."""
        key = (resource, operation)
        compiled = self._operations.get(key)
        if compiled is None:
            repository = self._client.repositories.get(resource)
            found = repository.api.get_operation(operation) if repository is not None else None
            if found is None:
                raise AttributeError(f"Asterisk's ARI has no operation {resource}.{operation}")
            compiled = self._operations[key] = _Operation.of(found.uri, found.json)
        return compiled

    def _prepare(
        self,
        resource: str,
        operation: str,
        *,
        parse: bool = True,
        channel_missing_is_gone: bool = False,
        gone_is_fine: bool = False,
        **params: Any,
    ) -> AriRequest:
        method, target, query = self._operation(resource, operation).request(params)
        if query:
            target += "?" + "&".join(f"{name}={_quote(value)}" for name, value in query.items())
        return AriRequest(
            f"{resource}.{operation}",
            method,
            target,
            parse=parse,
            channel_missing_is_gone=channel_missing_is_gone,
            gone_is_fine=gone_is_fine,
        )

    async def _call(
        self, resource: str, operation: str, *, parse: bool = True, **params: Any
    ) -> Any:
        """Run one ARI operation; its JSON answer (None when empty, or not ``parse``d: a
        channel or bridge snapshot nobody reads is kilobytes of JSON not worth decoding)."""
        return await self._send(self._prepare(resource, operation, parse=parse, **params))

    async def _send(self, request: AriRequest) -> Any:
        (outcome,) = await self.in_order(request)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def in_order(self, *requests: AriRequest) -> list[Any]:
        """Send ``requests`` at once on one connection; Asterisk runs them one after the
        other, in this order (it reads a connection's requests in turn). Each one's outcome,
        in order: its answer (as its typed method returns it) or the error it met (``Gone``,
        ``AriError``, ``AriUnavailable``). A request after a failed one still runs: the
        caller decides what a failure means for the rest. One write and one wake-up of
        Asterisk's HTTP thread instead of one each (on loopback, a write costs more CPU than
        the request's handling)."""
        if not requests:
            return []
        mark_ari_request()  # the first request after a code's match is what it times
        self.requests += len(requests)
        answers: list[HttpAnswer | Exception]
        try:
            answers = await self._rest.request_many(
                [(request.method, request.target, b"", "") for request in requests]
            )
        except (TimeoutError, OSError) as exc:  # the whole batch: each request met it
            answers = [exc] * len(requests)
        return [
            self._outcome(request, answer)
            for request, answer in zip(requests, answers, strict=True)
        ]

    @staticmethod
    def _outcome(request: AriRequest, answer: HttpAnswer | Exception) -> Any:
        if isinstance(answer, Exception):
            failed = AriUnavailable(f"{request.label}: {type(answer).__name__}")
            failed.__cause__ = answer
            return failed
        status, body = answer.status, answer.body
        if status >= 400:
            text = body.decode("utf-8", "replace")
            if status == 404:
                return None if request.gone_is_fine else Gone(404, text or "not found")
            if status == 400 and request.channel_missing_is_gone and "Channel not found" in text:
                return None if request.gone_is_fine else Gone(status, text)
            return AriError(status, text or answer.reason)
        if not request.parse:
            return None
        try:
            return json.loads(body) if body else None
        except ValueError:  # not JSON: not an Asterisk we can talk to
            return AriError(502, f"{request.label}: invalid JSON from Asterisk")

    @staticmethod
    def _json(result: Any) -> dict[str, Any]:
        return dict(result) if isinstance(result, Mapping) else {}

    # -- system ---------------------------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        return self._json(await self._call("asterisk", "getInfo"))

    async def application(self) -> dict[str, Any]:
        return self._json(await self._call("applications", "get", applicationName=self.app))

    async def set_event_filter(self, allowed: Iterable[str]) -> None:
        """Ask Asterisk to send our app only these event types (``PUT /applications/{app}/
        eventFilter``): every event left out is JSON Asterisk need not write and we need not
        read — a real share of both sides' CPU per call (ChannelVarset alone is many)."""
        url = self._operation("applications", "filter").uri.replace(
            "{applicationName}", urllib.parse.quote_plus(self.app)
        )
        body = {"allowed": [{"type": kind} for kind in sorted(allowed)]}
        mark_ari_request()
        self.requests += 1
        try:
            async with self._http.session.put(url, json=body) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise AriUnavailable(f"applications.filter: {type(exc).__name__}") from exc
        if status >= 400:
            raise AriError(status, text or (response.reason or ""))

    async def channels(self) -> list[dict[str, Any]]:
        return [self._json(c) for c in await self._call("channels", "list") or []]

    async def bridges(self) -> list[dict[str, Any]]:
        return [self._json(b) for b in await self._call("bridges", "list") or []]

    # -- channels ---------------------------------------------------------------------------

    async def channel(self, channel_id: str) -> dict[str, Any]:
        return self._json(await self._call("channels", "get", channelId=channel_id))

    async def create_channel(
        self,
        endpoint: str,
        *,
        app_args: str,
        channel_id: str | None = None,
        originator: str | None = None,
    ) -> dict[str, Any]:
        return self._json(
            await self._call(
                "channels",
                "create",
                endpoint=endpoint,
                app=self.app,
                appArgs=app_args,
                channelId=channel_id,
                originator=originator,
            )
        )

    def originate_request(
        self,
        endpoint: str,
        *,
        app_args: str,
        channel_id: str,
        originator: str | None = None,
        timeout: int | None = None,
    ) -> AriRequest:
        """Create ``endpoint``'s channel and dial it at once (``POST /channels/{id}``): one
        request and one Asterisk thread, where create + dial take two of each and park the
        channel in Asterisk's dial bridge meanwhile. The channel enters our app only once
        answered; until then we see its Dial progress and its end (docs/asterisk-facts.md)."""
        return self._prepare(
            "channels",
            "originateWithId",
            channelId=channel_id,
            endpoint=endpoint,
            app=self.app,
            appArgs=app_args,
            originator=originator,
            timeout=timeout,
        )

    async def dial(
        self, channel_id: str, *, caller: str | None = None, timeout: int | None = None
    ) -> None:
        await self._call("channels", "dial", channelId=channel_id, caller=caller, timeout=timeout)

    def answer_request(self, channel_id: str) -> AriRequest:
        return self._prepare("channels", "answer", channelId=channel_id)

    async def answer(self, channel_id: str) -> None:
        await self._send(self.answer_request(channel_id))

    def ring_request(self, channel_id: str) -> AriRequest:
        return self._prepare("channels", "ring", channelId=channel_id)

    def hangup_request(self, channel_id: str, reason: str = "normal") -> AriRequest:
        """Hang up; a channel that is already gone is fine."""
        return self._prepare(
            "channels", "hangup", gone_is_fine=True, channelId=channel_id, reason=reason
        )

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self._send(self.hangup_request(channel_id, reason))

    async def continue_in_dialplan(
        self,
        channel_id: str,
        *,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
    ) -> None:
        await self._call(
            "channels",
            "continueInDialplan",
            channelId=channel_id,
            context=context,
            extension=extension,
            priority=priority,
        )

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        await self._call(
            "channels", "setChannelVar", channelId=channel_id, variable=name, value=value
        )

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        try:
            result = await self._call(
                "channels", "getChannelVar", channelId=channel_id, variable=name
            )
        except Gone:
            return None
        value = self._json(result).get("value")
        return value if isinstance(value, str) else None

    async def play_on_channel(
        self, channel_id: str, media: str, lang: str | None = None, playback_id: str | None = None
    ) -> str:
        playback = self._json(
            await self._call(
                "channels",
                "play",
                channelId=channel_id,
                media=media,
                lang=lang,
                playbackId=playback_id,
            )
        )
        return str(playback.get("id", playback_id or ""))

    async def hold(self, channel_id: str, on: bool) -> None:
        """Indicate hold (or unhold) to the channel's device (``POST/DELETE …/hold``)."""
        await self._call("channels", "hold" if on else "unhold", channelId=channel_id)

    async def mute(self, channel_id: str, direction: str, muted: bool) -> None:
        """Mute ``in`` (what the channel sends), ``out`` (what it hears) or ``both``."""
        await self._call(
            "channels", "mute" if muted else "unmute", channelId=channel_id, direction=direction
        )

    async def send_dtmf(self, channel_id: str, digits: str, duration_ms: int) -> None:
        """Asterisk plays ``digits`` out on the channel (its far end hears them); it answers
        before they are played, and plays a channel's requests one after another."""
        await self._call(
            "channels", "sendDTMF", channelId=channel_id, dtmf=digits, duration=duration_ms
        )

    async def snoop(
        self, channel_id: str, snoop_id: str, *, app_args: str, spy: str = "both"
    ) -> None:
        """A snoop channel on ``channel_id`` that enters our app (StasisStart with ``app_args``)
        hearing what the channel says (``in``), hears (``out``) or both: an audiohook on the
        channel, as MixMonitor uses, so the channel's bridge gets no extra member. Its snapshot
        arrives with its StasisStart."""
        await self._call(
            "channels",
            "snoopChannelWithId",
            parse=False,
            channelId=channel_id,
            snoopId=snoop_id,
            spy=spy,
            app=self.app,
            appArgs=app_args,
        )

    async def record_channel(
        self, channel_id: str, name: str, fmt: str, *, max_duration: int | None = None
    ) -> None:
        """Record what a channel (here: a snoop channel) carries; an existing name fails."""
        await self._call(
            "channels",
            "record",
            parse=False,
            channelId=channel_id,
            name=name,
            format=fmt,
            maxDurationSeconds=max_duration,
            ifExists="fail",
            beep=_flag(False),
        )

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        await self._call("channels", "startMoh", channelId=channel_id, mohClass=moh_class)

    async def stop_moh(self, channel_id: str) -> None:
        await self._call("channels", "stopMoh", channelId=channel_id)

    # -- bridges ------------------------------------------------------------------------------

    def create_bridge_request(self, types: str, bridge_id: str) -> AriRequest:
        """A bridge with our own id: its answer tells nothing new."""
        return self._prepare("bridges", "create", parse=False, type=types, bridgeId=bridge_id)

    async def create_bridge(self, types: str, bridge_id: str | None = None) -> str:
        if bridge_id is not None:
            await self._send(self.create_bridge_request(types, bridge_id))
            return bridge_id
        bridge = self._json(await self._call("bridges", "create", type=types))
        return str(bridge.get("id", ""))

    def add_to_bridge_request(
        self, bridge_id: str, channel_ids: list[str], *, absorb_dtmf: bool = False
    ) -> AriRequest:
        return self._prepare(
            "bridges",
            "addChannel",
            channel_missing_is_gone=True,
            bridgeId=bridge_id,
            channel=",".join(channel_ids),
            absorbDTMF=_flag(absorb_dtmf),
        )

    async def add_to_bridge(
        self, bridge_id: str, channel_ids: list[str], *, absorb_dtmf: bool = False
    ) -> None:
        await self._send(
            self.add_to_bridge_request(bridge_id, channel_ids, absorb_dtmf=absorb_dtmf)
        )

    async def remove_from_bridge(self, bridge_id: str, channel_id: str) -> None:
        await self._send(
            self._prepare(
                "bridges",
                "removeChannel",
                channel_missing_is_gone=True,
                bridgeId=bridge_id,
                channel=channel_id,
            )
        )

    def destroy_bridge_request(self, bridge_id: str) -> AriRequest:
        """Destroy; a bridge that is already gone is fine."""
        return self._prepare("bridges", "destroy", gone_is_fine=True, bridgeId=bridge_id)

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self._send(self.destroy_bridge_request(bridge_id))

    async def play_on_bridge(
        self, bridge_id: str, media: str, lang: str | None = None, playback_id: str | None = None
    ) -> str:
        playback = self._json(
            await self._call(
                "bridges",
                "play",
                bridgeId=bridge_id,
                media=media,
                lang=lang,
                playbackId=playback_id,
            )
        )
        return str(playback.get("id", playback_id or ""))

    async def start_bridge_moh(self, bridge_id: str, moh_class: str | None = None) -> None:
        await self._call("bridges", "startMoh", bridgeId=bridge_id, mohClass=moh_class)

    async def stop_bridge_moh(self, bridge_id: str) -> None:
        with contextlib.suppress(Gone):
            await self._call("bridges", "stopMoh", bridgeId=bridge_id)

    async def record_bridge(
        self, bridge_id: str, name: str, fmt: str, *, max_duration: int | None = None
    ) -> dict[str, Any]:
        """Record the bridge's mix; an existing recording of that name is an error."""
        return self._json(
            await self._call(
                "bridges",
                "record",
                bridgeId=bridge_id,
                name=name,
                format=fmt,
                maxDurationSeconds=max_duration,
                ifExists="fail",
                beep=_flag(False),
            )
        )

    # -- recordings ---------------------------------------------------------------------------

    async def stop_recording(self, name: str) -> None:
        await self._call("recordings", "stop", recordingName=name)

    async def mute_recording(self, name: str, muted: bool) -> None:
        await self._call("recordings", "mute" if muted else "unmute", recordingName=name)

    async def live_recording(self, name: str) -> dict[str, Any]:
        return self._json(await self._call("recordings", "getLive", recordingName=name))

    async def stored_recording(self, name: str) -> dict[str, Any]:
        return self._json(await self._call("recordings", "getStored", recordingName=name))

    async def delete_stored_recording(self, name: str) -> None:
        await self._call("recordings", "deleteStored", recordingName=name)

    def stored_recording_file(
        self, name: str
    ) -> contextlib.AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """The stored file, streamed (``stored_file.open_stored_file``)."""
        timeouts = self._http.timeouts
        return open_stored_file(
            self._http.session,
            self._base_url,
            name,
            connect=timeouts.connect,
            read=timeouts.request,
        )

    # -- playbacks ------------------------------------------------------------------------------

    async def stop_playback(self, playback_id: str) -> None:
        with contextlib.suppress(Gone):
            await self._call("playbacks", "stop", playbackId=playback_id)
