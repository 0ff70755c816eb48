"""ARI over HTTP and websocket for the simulated Asterisk (aiohttp).

Routes are made from the operation table, so what is served and what the swagger declarations
announce cannot drift apart. Every request is recorded (``core.requests``) for tests to check.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from .core import SimError, SimulatedAsterisk
from .operations import OPERATIONS, Operation, api_declaration, resource_listing

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_TRUE = {"true", "yes", "1", "on", "y", "t"}
_FALSE = {"false", "no", "0", "off", "n", "f"}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _error(status: int, message: str) -> web.Response:
    return _json({"message": message}, status)


class AriServer:
    """Serves one ``SimulatedAsterisk`` on loopback."""

    def __init__(self, core: SimulatedAsterisk, *, username: str, password: str) -> None:
        self.core = core
        self.username = username
        self.password = password
        self.websockets: set[web.WebSocketResponse] = set()
        self.websocket_apps: dict[web.WebSocketResponse, set[str]] = {}
        self.websocket_auth: list[str] = []  # "header" or "query", per websocket opened
        self.app = web.Application(middlewares=[self._middleware])
        self.app.router.add_get("/ari/api-docs/resources.json", self._resources)
        self.app.router.add_get("/ari/api-docs/{resource}.json", self._declaration)
        self.app.router.add_get("/ari/events", self._events)
        for op in OPERATIONS:
            if not op.websocket:
                self.app.router.add_route(op.method, "/ari" + op.path, self._dispatch(op))
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        await self.drop_websockets()
        await self.core.remote_media.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def drop_websockets(self) -> None:
        """Cut every event websocket (calls stay up; events in the gap are lost)."""
        for connection in list(self.core.connections):
            self.core.disconnect_app(connection)
        for ws in list(self.websockets):
            await ws.close()
        await asyncio.sleep(0)

    # -- auth and dispatch ------------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        given = ""
        if header.startswith("Basic "):
            try:
                given = base64.b64decode(header[6:], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
        elif "api_key" in request.query:
            given = request.query["api_key"]
        expected = f"{self.username}:{self.password}"
        return bool(given) and hmac.compare_digest(given.encode(), expected.encode())

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(("/ari/", "/sim/")):
            return await handler(request)
        if not self._authorised(request):
            return web.json_response(
                {"error": "Authentication required"},
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'},
            )
        try:
            return await handler(request)
        except SimError as exc:
            return _json({exc.key: exc.message}, exc.status)
        except web.HTTPNotFound:
            return _error(404, "Resource not found")
        except web.HTTPMethodNotAllowed:
            return _error(405, "Method Not Allowed")

    def _dispatch(self, op: Operation) -> Handler:
        method = getattr(self, f"_op_{op.resource}_{op.nickname}")

        async def handle(request: web.Request) -> web.StreamResponse:
            query = {k: v for k, v in request.query.items() if k != "api_key"}
            self.core.requests.append((request.method, request.path, query))
            for seconds in self.core.stalls_for(request.method, request.path):
                await asyncio.sleep(seconds)  # a slow Asterisk, for fault tests
            garbled = self.core.garbled_for(request.method, request.path)
            if garbled is not None:
                status, body = garbled
                return web.Response(status=status, text=body, content_type="application/json")
            args: dict[str, Any] = {}
            for param in op.params:
                if param.param_type == "path":
                    args[param.name] = request.match_info[param.name]
                    continue
                if param.param_type == "body":
                    continue
                value = query.get(param.name)
                if value is None:
                    if param.required:
                        return _error(400, f"{param.name} is required")
                    continue
                if param.data_type == "boolean":
                    lowered = value.lower()
                    if lowered not in _TRUE | _FALSE:
                        return _error(400, f"{param.name} must be a boolean")
                    args[param.name] = lowered in _TRUE
                elif param.data_type in ("int", "long"):
                    if not re.fullmatch(r"-?\d+", value):
                        return _error(400, f"{param.name} must be an integer")
                    args[param.name] = int(value)
                else:
                    args[param.name] = value
            if any(p.param_type == "body" for p in op.params) and request.can_read_body:
                try:
                    body = await request.json()
                except json.JSONDecodeError:
                    return _error(400, "Request body is not valid JSON")
                if isinstance(body, dict) and isinstance(body.get("variables"), dict):
                    args["variables"] = {str(k): str(v) for k, v in body["variables"].items()}
                if any(p.name == "filter" for p in op.params):
                    if not isinstance(body, dict):
                        return _error(400, "Invalid filter")
                    args["filter"] = body
            response: web.StreamResponse = await method(**args)
            return response

        return handle

    # -- swagger ----------------------------------------------------------------------------

    def _base(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}/ari"

    async def _resources(self, request: web.Request) -> web.Response:
        return _json(resource_listing(self._base(request)))

    async def _declaration(self, request: web.Request) -> web.Response:
        declaration = api_declaration(request.match_info["resource"], self._base(request))
        if declaration is None:
            return _error(404, "Resource not found")
        return _json(declaration)

    # -- websocket ----------------------------------------------------------------------------

    async def _events(self, request: web.Request) -> web.StreamResponse:
        apps_param = request.query.get("app", "")
        apps = {a for a in apps_param.split(",") if a}
        if not apps:
            return _error(400, "Missing param app")
        subscribe_all = request.query.get("subscribeAll", "false").lower() in _TRUE
        self.websocket_auth.append("query" if "api_key" in request.query else "header")
        ws = web.WebSocketResponse(heartbeat=None, autoping=True)
        await ws.prepare(request)
        self.websockets.add(ws)
        self.websocket_apps[ws] = apps
        connection = self.core.connect_app(apps, subscribe_all)
        writer = asyncio.create_task(self._write_events(ws, connection.queue))
        try:
            async for message in ws:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            self.core.disconnect_app(connection)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            self.websockets.discard(ws)
            self.websocket_apps.pop(ws, None)
            await ws.close()
        return ws

    async def _write_events(
        self, ws: web.WebSocketResponse, queue: asyncio.Queue[dict[str, Any] | None]
    ) -> None:
        while (event := await queue.get()) is not None:
            if ws.closed:
                return
            try:
                await ws.send_str(json.dumps(event))
            except ConnectionError:
                return
        await ws.close()

    # -- operations: asterisk, applications -------------------------------------------------

    async def _op_asterisk_getInfo(self, only: str | None = None) -> web.Response:
        return _json(self.core.info_json())

    async def _op_asterisk_ping(self) -> web.Response:
        return _json({"asterisk_id": self.core.entity_id, "ping": "pong", "timestamp": ""})

    async def _op_applications_list(self) -> web.Response:
        return _json([self.core.application_json(name) for name in sorted(self.core.known_apps)])

    async def _op_applications_get(self, applicationName: str) -> web.Response:
        return _json(self.core.application_json(applicationName))

    async def _op_applications_filter(
        self, applicationName: str, filter: dict[str, Any] | None = None
    ) -> web.Response:
        allowed = (filter or {}).get("allowed")
        if allowed is not None and not isinstance(allowed, list):
            return _error(400, "Invalid filter")
        self.core.set_event_filter(applicationName, allowed)
        return _json(self.core.application_json(applicationName))

    # -- operations: channels ------------------------------------------------------------------

    async def _op_channels_list(self) -> web.Response:
        return _json([self.core.snapshot(c) for c in self.core.channels.values()])

    async def _op_channels_create(
        self,
        endpoint: str,
        app: str,
        appArgs: str | None = None,
        channelId: str | None = None,
        otherChannelId: str | None = None,
        originator: str | None = None,
        formats: str | None = None,
        variables: dict[str, str] | None = None,
    ) -> web.Response:
        channel = self.core.create_channel(
            endpoint, app, appArgs, channelId, originator, variables or {}
        )
        return _json(self.core.snapshot(channel))

    async def _op_channels_originateWithId(
        self,
        channelId: str,
        endpoint: str,
        extension: str | None = None,
        context: str | None = None,
        priority: int | None = None,
        label: str | None = None,
        app: str | None = None,
        appArgs: str | None = None,
        callerId: str | None = None,
        timeout: int | None = None,
        variables: dict[str, str] | None = None,
        otherChannelId: str | None = None,
        originator: str | None = None,
        formats: str | None = None,
    ) -> web.Response:
        if not app:  # originating into the dialplan is not simulated: the app never does it
            raise SimError(400, "Application or extension must be specified")
        channel = self.core.originate(
            endpoint,
            app,
            appArgs,
            channelId,
            originator,
            variables or {},
            30 if timeout is None else timeout,
        )
        return _json(self.core.snapshot(channel))

    async def _op_channels_get(self, channelId: str) -> web.Response:
        channel = self.core.require_channel(channelId, in_stasis=False)
        return _json(self.core.snapshot(channel))

    async def _op_channels_hangup(
        self,
        channelId: str,
        reason_code: str | None = None,
        reason: str | None = None,
    ) -> web.Response:
        channel = self.core.require_channel(channelId, in_stasis=False)
        self.core.hangup_by_app(channel, reason, reason_code)
        return web.Response(status=204)

    async def _op_channels_continueInDialplan(
        self,
        channelId: str,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        label: str | None = None,
    ) -> web.Response:
        channel = self.core.require_channel(channelId)
        self.core.continue_in_dialplan(channel, context, extension, priority)
        return web.Response(status=204)

    async def _op_channels_answer(self, channelId: str) -> web.Response:
        self.core.answer(self.core.require_channel(channelId))
        return web.Response(status=204)

    async def _op_channels_ring(self, channelId: str) -> web.Response:
        channel = self.core.require_channel(channelId)
        channel.ringing = True
        self.core._touch()
        return web.Response(status=204)

    async def _op_channels_ringStop(self, channelId: str) -> web.Response:
        channel = self.core.require_channel(channelId)
        channel.ringing = False
        self.core._touch()
        return web.Response(status=204)

    async def _op_channels_sendDTMF(
        self,
        channelId: str,
        dtmf: str | None = None,
        before: int | None = None,
        between: int | None = None,
        duration: int | None = None,
        after: int | None = None,
    ) -> web.Response:
        if not dtmf:
            return _error(400, "DTMF is required")
        channel = self.core.require_channel(channelId)  # 404 gone, 409 not in Stasis
        self.core.send_dtmf(
            channel,
            dtmf,
            before or 0,
            100 if between is None else between,
            100 if duration is None else duration,
            after or 0,
        )
        return web.Response(status=204)

    async def _set_flag(self, channel_id: str, apply: Callable[[Any], None]) -> web.Response:
        channel = self.core.require_channel(channel_id)
        apply(channel)
        self.core._touch()
        return web.Response(status=204)

    async def _op_channels_mute(
        self,
        channelId: str,
        direction: str | None = None,
    ) -> web.Response:
        directions = _directions(direction)
        return await self._set_flag(channelId, lambda c: c.muted.update(directions))

    async def _op_channels_unmute(
        self,
        channelId: str,
        direction: str | None = None,
    ) -> web.Response:
        directions = _directions(direction)
        return await self._set_flag(channelId, lambda c: c.muted.difference_update(directions))

    async def _op_channels_hold(self, channelId: str) -> web.Response:
        self.core.hold(self.core.require_channel(channelId), True)
        return web.Response(status=204)

    async def _op_channels_unhold(self, channelId: str) -> web.Response:
        self.core.hold(self.core.require_channel(channelId), False)
        return web.Response(status=204)

    async def _op_channels_startMoh(
        self,
        channelId: str,
        mohClass: str | None = None,
    ) -> web.Response:
        moh = mohClass or "default"
        return await self._set_flag(channelId, lambda c: setattr(c, "moh_class", moh))

    async def _op_channels_stopMoh(self, channelId: str) -> web.Response:
        return await self._set_flag(channelId, lambda c: setattr(c, "moh_class", None))

    async def _op_channels_startSilence(self, channelId: str) -> web.Response:
        return await self._set_flag(channelId, lambda c: setattr(c, "silence", True))

    async def _op_channels_stopSilence(self, channelId: str) -> web.Response:
        return await self._set_flag(channelId, lambda c: setattr(c, "silence", False))

    async def _op_channels_play(
        self,
        channelId: str,
        media: str,
        lang: str | None = None,
        playbackId: str | None = None,
        **_unused: object,
    ) -> web.Response:
        channel = self.core.require_channel(channelId)
        playback = self.core.play(channel, media, lang, playbackId)
        return _json(playback.json(), 201)

    async def _op_channels_record(
        self,
        channelId: str,
        name: str,
        format: str,
        maxDurationSeconds: int | None = None,
        ifExists: str | None = None,
        **_unused: object,
    ) -> web.Response:
        channel = self.core.require_channel(channelId)
        if channel.bridge is not None:
            raise SimError(
                409,
                "Channel is not in a Stasis application; the channel is "
                "currently bridged with other channels",
            )
        recording = self.core.record(channel, name, format, maxDurationSeconds, ifExists)
        return _json(recording.json(), 201)

    async def _op_channels_snoopChannel(
        self,
        channelId: str,
        app: str,
        spy: str | None = None,
        whisper: str | None = None,
        appArgs: str | None = None,
        snoopId: str | None = None,
    ) -> web.Response:
        spied = self.core.require_channel(channelId, in_stasis=False)
        snoop = self.core.snoop(
            spied, spy=spy, whisper=whisper, app=app, app_args=appArgs, snoop_id=snoopId
        )
        return _json(self.core.snapshot(snoop))

    async def _op_channels_snoopChannelWithId(
        self,
        channelId: str,
        snoopId: str,
        app: str,
        spy: str | None = None,
        whisper: str | None = None,
        appArgs: str | None = None,
    ) -> web.Response:
        return await self._op_channels_snoopChannel(
            channelId, app, spy=spy, whisper=whisper, appArgs=appArgs, snoopId=snoopId
        )

    async def _op_channels_getChannelVar(
        self,
        channelId: str,
        variable: str,
    ) -> web.Response:
        channel = self.core.require_channel(channelId)
        return _json({"value": self.core.get_variable(channel, variable)})

    async def _op_channels_setChannelVar(
        self,
        channelId: str,
        variable: str,
        value: str | None = None,
    ) -> web.Response:
        channel = self.core.require_channel(channelId)
        self.core.set_variable(channel, variable, value or "")
        return web.Response(status=204)

    async def _op_channels_dial(
        self,
        channelId: str,
        caller: str | None = None,
        timeout: int | None = None,
    ) -> web.Response:
        channel = self.core.channels.get(channelId)
        if channel is None or channel.gone:
            raise SimError(404, "Channel cannot be found.")
        self.core.dial(channel, caller, timeout or 0)
        return web.Response(status=204)

    # -- operations: bridges ------------------------------------------------------------------

    async def _op_bridges_list(self) -> web.Response:
        return _json([b.json() for b in self.core.bridges.values()])

    async def _op_bridges_create(
        self,
        type: str | None = None,
        bridgeId: str | None = None,
        name: str | None = None,
    ) -> web.Response:
        bridge = self.core.create_bridge(type, bridgeId, name or "")
        return _json(bridge.json())

    async def _op_bridges_get(self, bridgeId: str) -> web.Response:
        return _json(self.core.require_bridge(bridgeId).json())

    async def _op_bridges_destroy(self, bridgeId: str) -> web.Response:
        self.core.destroy_bridge(self.core.require_bridge(bridgeId))
        return web.Response(status=204)

    async def _op_bridges_addChannel(
        self,
        bridgeId: str,
        channel: str,
        role: str | None = None,
        absorbDTMF: bool | None = None,
        mute: bool | None = None,
        inhibitConnectedLineUpdates: bool | None = None,
    ) -> web.Response:
        bridge = self.core.require_bridge(bridgeId)
        self.core.add_to_bridge(bridge, channel.split(","), bool(absorbDTMF), bool(mute))
        return web.Response(status=204)

    async def _op_bridges_removeChannel(
        self,
        bridgeId: str,
        channel: str,
    ) -> web.Response:
        bridge = self.core.require_bridge(bridgeId)
        for channel_id in channel.split(","):
            self.core.remove_from_bridge(bridge, channel_id)
        return web.Response(status=204)

    async def _op_bridges_startMoh(
        self,
        bridgeId: str,
        mohClass: str | None = None,
    ) -> web.Response:
        bridge = self.core.require_bridge(bridgeId)
        bridge.moh_class = mohClass or "default"
        self.core._touch()
        return web.Response(status=204)

    async def _op_bridges_stopMoh(self, bridgeId: str) -> web.Response:
        bridge = self.core.require_bridge(bridgeId)
        bridge.moh_class = None
        self.core._touch()
        return web.Response(status=204)

    async def _op_bridges_play(
        self,
        bridgeId: str,
        media: str,
        lang: str | None = None,
        playbackId: str | None = None,
        **_unused: object,
    ) -> web.Response:
        bridge = self.core.require_bridge(bridgeId)
        playback = self.core.play(bridge, media, lang, playbackId)
        return _json(playback.json(), 201)

    async def _op_bridges_record(
        self,
        bridgeId: str,
        name: str,
        format: str,
        maxDurationSeconds: int | None = None,
        ifExists: str | None = None,
        **_unused: object,
    ) -> web.Response:
        bridge = self.core.require_bridge(bridgeId)
        recording = self.core.record(bridge, name, format, maxDurationSeconds, ifExists)
        return _json(recording.json(), 201)

    # -- operations: playbacks, recordings ----------------------------------------------------

    async def _op_playbacks_get(self, playbackId: str) -> web.Response:
        playback = self.core.playbacks.get(playbackId)
        if playback is None:
            raise SimError(404, "The playback cannot be found")
        return _json(playback.json())

    async def _op_playbacks_stop(self, playbackId: str) -> web.Response:
        self.core.stop_playback(playbackId)
        return web.Response(status=204)

    async def _op_recordings_listStored(self) -> web.Response:
        return _json([r.json() for r in self.core.stored_recordings.values()])

    async def _op_recordings_getStored(self, recordingName: str) -> web.Response:
        stored = self.core.stored_recordings.get(recordingName)
        if stored is None:
            raise SimError(404, "Recording not found")
        return _json(stored.json())

    async def _op_recordings_deleteStored(self, recordingName: str) -> web.Response:
        if self.core.stored_recordings.pop(recordingName, None) is None:
            raise SimError(404, "Recording not found")
        return web.Response(status=204)

    async def _op_recordings_getStoredFile(self, recordingName: str) -> web.Response:
        audio, content_type = self.core.recording_audio(recordingName)
        return web.Response(body=audio, content_type=content_type)

    async def _op_recordings_getLive(self, recordingName: str) -> web.Response:
        return _json(self.core.require_live(recordingName).json())

    async def _op_recordings_cancel(self, recordingName: str) -> web.Response:
        self.core.stop_recording(recordingName, cancel=True)
        return web.Response(status=204)

    async def _op_recordings_stop(self, recordingName: str) -> web.Response:
        self.core.stop_recording(recordingName)
        return web.Response(status=204)

    async def _op_recordings_mute(self, recordingName: str) -> web.Response:
        self.core.mute_recording(recordingName, True)
        return web.Response(status=204)

    async def _op_recordings_unmute(self, recordingName: str) -> web.Response:
        self.core.mute_recording(recordingName, False)
        return web.Response(status=204)


def _directions(direction: str | None) -> set[str]:
    value = direction or "both"
    if value not in ("both", "in", "out"):
        raise SimError(400, "Invalid direction")
    return {"in", "out"} if value == "both" else {value}
