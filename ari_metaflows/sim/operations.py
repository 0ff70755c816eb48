"""The ARI operations the simulator serves, and the swagger 1.1 declarations made from them.

The declarations are written here (not copied from Asterisk): just enough for aioari to build
its client — resource listing, one API declaration per resource, and the models of the events
the simulator sends. The conformance tests check every operation and parameter against the real
declarations in ``../shared/ari-api-docs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    name: str
    param_type: str  # "path", "query" or "body"
    data_type: str = "string"
    required: bool = False


@dataclass(frozen=True)
class Operation:
    resource: str
    path: str
    method: str
    nickname: str
    params: tuple[Param, ...] = ()
    websocket: bool = False

    @property
    def response_class(self) -> str:
        return RESPONSE_CLASSES.get((self.resource, self.nickname), "void")


def _p(name: str, data_type: str = "string", *, required: bool = False) -> Param:
    return Param(name, "query", data_type, required)


def _path(name: str) -> Param:
    return Param(name, "path", "string", True)


_CH = _path("channelId")
_BR = _path("bridgeId")
_PB = _path("playbackId")
_REC = _path("recordingName")

OPERATIONS: tuple[Operation, ...] = (
    Operation("asterisk", "/asterisk/info", "GET", "getInfo", (_p("only"),)),
    Operation("asterisk", "/asterisk/ping", "GET", "ping"),
    Operation("applications", "/applications", "GET", "list"),
    Operation(
        "applications", "/applications/{applicationName}", "GET", "get", (_path("applicationName"),)
    ),
    Operation(
        "applications",
        "/applications/{applicationName}/eventFilter",
        "PUT",
        "filter",
        (_path("applicationName"), Param("filter", "body", "object")),
    ),
    Operation("channels", "/channels", "GET", "list"),
    Operation(
        "channels",
        "/channels/create",
        "POST",
        "create",
        (
            _p("endpoint", required=True),
            _p("app", required=True),
            _p("appArgs"),
            _p("channelId"),
            _p("otherChannelId"),
            _p("originator"),
            _p("formats"),
            Param("variables", "body", "containers"),
        ),
    ),
    Operation(
        "channels",
        "/channels/{channelId}",
        "POST",
        "originateWithId",
        (
            _CH,
            _p("endpoint", required=True),
            _p("extension"),
            _p("context"),
            _p("priority", "long"),
            _p("label"),
            _p("app"),
            _p("appArgs"),
            _p("callerId"),
            _p("timeout", "int"),
            Param("variables", "body", "containers"),
            _p("otherChannelId"),
            _p("originator"),
            _p("formats"),
        ),
    ),
    Operation("channels", "/channels/{channelId}", "GET", "get", (_CH,)),
    Operation(
        "channels",
        "/channels/{channelId}",
        "DELETE",
        "hangup",
        (_CH, _p("reason_code"), _p("reason")),
    ),
    Operation(
        "channels",
        "/channels/{channelId}/continue",
        "POST",
        "continueInDialplan",
        (_CH, _p("context"), _p("extension"), _p("priority", "int"), _p("label")),
    ),
    Operation("channels", "/channels/{channelId}/answer", "POST", "answer", (_CH,)),
    Operation("channels", "/channels/{channelId}/ring", "POST", "ring", (_CH,)),
    Operation("channels", "/channels/{channelId}/ring", "DELETE", "ringStop", (_CH,)),
    Operation(
        "channels",
        "/channels/{channelId}/dtmf",
        "POST",
        "sendDTMF",
        (
            _CH,
            _p("dtmf"),
            _p("before", "int"),
            _p("between", "int"),
            _p("duration", "int"),
            _p("after", "int"),
        ),
    ),
    Operation(
        "channels",
        "/channels/{channelId}/snoop",
        "POST",
        "snoopChannel",
        (_CH, _p("spy"), _p("whisper"), _p("app", required=True), _p("appArgs"), _p("snoopId")),
    ),
    Operation(
        "channels",
        "/channels/{channelId}/snoop/{snoopId}",
        "POST",
        "snoopChannelWithId",
        (_CH, _path("snoopId"), _p("spy"), _p("whisper"), _p("app", required=True), _p("appArgs")),
    ),
    Operation("channels", "/channels/{channelId}/mute", "POST", "mute", (_CH, _p("direction"))),
    Operation("channels", "/channels/{channelId}/mute", "DELETE", "unmute", (_CH, _p("direction"))),
    Operation("channels", "/channels/{channelId}/hold", "POST", "hold", (_CH,)),
    Operation("channels", "/channels/{channelId}/hold", "DELETE", "unhold", (_CH,)),
    Operation("channels", "/channels/{channelId}/moh", "POST", "startMoh", (_CH, _p("mohClass"))),
    Operation("channels", "/channels/{channelId}/moh", "DELETE", "stopMoh", (_CH,)),
    Operation("channels", "/channels/{channelId}/silence", "POST", "startSilence", (_CH,)),
    Operation("channels", "/channels/{channelId}/silence", "DELETE", "stopSilence", (_CH,)),
    Operation(
        "channels",
        "/channels/{channelId}/play",
        "POST",
        "play",
        (
            _CH,
            _p("media", required=True),
            _p("lang"),
            _p("offsetms", "int"),
            _p("skipms", "int"),
            _p("playbackId"),
        ),
    ),
    Operation(
        "channels",
        "/channels/{channelId}/record",
        "POST",
        "record",
        (
            _CH,
            _p("name", required=True),
            _p("format", required=True),
            _p("maxDurationSeconds", "int"),
            _p("maxSilenceSeconds", "int"),
            _p("ifExists"),
            _p("beep", "boolean"),
            _p("terminateOn"),
        ),
    ),
    Operation(
        "channels",
        "/channels/{channelId}/variable",
        "GET",
        "getChannelVar",
        (_CH, _p("variable", required=True)),
    ),
    Operation(
        "channels",
        "/channels/{channelId}/variable",
        "POST",
        "setChannelVar",
        (_CH, _p("variable", required=True), _p("value")),
    ),
    Operation(
        "channels",
        "/channels/{channelId}/dial",
        "POST",
        "dial",
        (_CH, _p("caller"), _p("timeout", "int")),
    ),
    Operation("bridges", "/bridges", "GET", "list"),
    Operation("bridges", "/bridges", "POST", "create", (_p("type"), _p("bridgeId"), _p("name"))),
    Operation("bridges", "/bridges/{bridgeId}", "GET", "get", (_BR,)),
    Operation("bridges", "/bridges/{bridgeId}", "DELETE", "destroy", (_BR,)),
    Operation(
        "bridges",
        "/bridges/{bridgeId}/addChannel",
        "POST",
        "addChannel",
        (
            _BR,
            _p("channel", required=True),
            _p("role"),
            _p("absorbDTMF", "boolean"),
            _p("mute", "boolean"),
            _p("inhibitConnectedLineUpdates", "boolean"),
        ),
    ),
    Operation(
        "bridges",
        "/bridges/{bridgeId}/removeChannel",
        "POST",
        "removeChannel",
        (_BR, _p("channel", required=True)),
    ),
    Operation("bridges", "/bridges/{bridgeId}/moh", "POST", "startMoh", (_BR, _p("mohClass"))),
    Operation("bridges", "/bridges/{bridgeId}/moh", "DELETE", "stopMoh", (_BR,)),
    Operation(
        "bridges",
        "/bridges/{bridgeId}/play",
        "POST",
        "play",
        (
            _BR,
            _p("media", required=True),
            _p("lang"),
            _p("offsetms", "int"),
            _p("skipms", "int"),
            _p("playbackId"),
        ),
    ),
    Operation(
        "bridges",
        "/bridges/{bridgeId}/record",
        "POST",
        "record",
        (
            _BR,
            _p("name", required=True),
            _p("format", required=True),
            _p("maxDurationSeconds", "int"),
            _p("maxSilenceSeconds", "int"),
            _p("ifExists"),
            _p("beep", "boolean"),
            _p("terminateOn"),
        ),
    ),
    Operation("playbacks", "/playbacks/{playbackId}", "GET", "get", (_PB,)),
    Operation("playbacks", "/playbacks/{playbackId}", "DELETE", "stop", (_PB,)),
    Operation("recordings", "/recordings/stored", "GET", "listStored"),
    Operation("recordings", "/recordings/stored/{recordingName}", "GET", "getStored", (_REC,)),
    Operation(
        "recordings", "/recordings/stored/{recordingName}", "DELETE", "deleteStored", (_REC,)
    ),
    Operation(
        "recordings", "/recordings/stored/{recordingName}/file", "GET", "getStoredFile", (_REC,)
    ),
    Operation("recordings", "/recordings/live/{recordingName}", "GET", "getLive", (_REC,)),
    Operation("recordings", "/recordings/live/{recordingName}", "DELETE", "cancel", (_REC,)),
    Operation("recordings", "/recordings/live/{recordingName}/stop", "POST", "stop", (_REC,)),
    Operation("recordings", "/recordings/live/{recordingName}/mute", "POST", "mute", (_REC,)),
    Operation("recordings", "/recordings/live/{recordingName}/mute", "DELETE", "unmute", (_REC,)),
    Operation(
        "events",
        "/events",
        "GET",
        "eventWebsocket",
        (_p("app", required=True), _p("subscribeAll", "boolean")),
        websocket=True,
    ),
)

RESPONSE_CLASSES = {
    ("asterisk", "getInfo"): "AsteriskInfo",
    ("asterisk", "ping"): "AsteriskPing",
    ("applications", "list"): "List[Application]",
    ("applications", "get"): "Application",
    ("applications", "filter"): "Application",
    ("channels", "list"): "List[Channel]",
    ("channels", "create"): "Channel",
    ("channels", "originateWithId"): "Channel",
    ("channels", "get"): "Channel",
    ("channels", "play"): "Playback",
    ("channels", "record"): "LiveRecording",
    ("channels", "snoopChannel"): "Channel",
    ("channels", "snoopChannelWithId"): "Channel",
    ("channels", "getChannelVar"): "Variable",
    ("bridges", "list"): "List[Bridge]",
    ("bridges", "create"): "Bridge",
    ("bridges", "get"): "Bridge",
    ("bridges", "play"): "Playback",
    ("bridges", "record"): "LiveRecording",
    ("playbacks", "get"): "Playback",
    ("recordings", "listStored"): "List[StoredRecording]",
    ("recordings", "getStored"): "StoredRecording",
    ("recordings", "getStoredFile"): "binary",
    ("recordings", "getLive"): "LiveRecording",
    ("events", "eventWebsocket"): "Message",
}

RESOURCES = ("asterisk", "applications", "channels", "bridges", "playbacks", "recordings", "events")

# Models: the object and event shapes the simulator produces, as (field, type) pairs.
_OBJECT_MODELS: dict[str, dict[str, str]] = {
    "CallerID": {"name": "string", "number": "string"},
    "DialplanCEP": {
        "context": "string",
        "exten": "string",
        "priority": "long",
        "app_name": "string",
        "app_data": "string",
    },
    "Channel": {
        "id": "string",
        "name": "string",
        "state": "string",
        "protocol_id": "string",
        "caller": "CallerID",
        "connected": "CallerID",
        "accountcode": "string",
        "dialplan": "DialplanCEP",
        "creationtime": "Date",
        "language": "string",
        "channelvars": "object",
    },
    "Bridge": {
        "id": "string",
        "technology": "string",
        "bridge_type": "string",
        "bridge_class": "string",
        "creator": "string",
        "name": "string",
        "channels": "List[string]",
        "creationtime": "Date",
        "video_mode": "string",
    },
    "Playback": {
        "id": "string",
        "media_uri": "string",
        "target_uri": "string",
        "language": "string",
        "state": "string",
    },
    "LiveRecording": {
        "name": "string",
        "format": "string",
        "state": "string",
        "target_uri": "string",
        "duration": "int",
        "cause": "string",
    },
}

EVENT_MODELS: dict[str, dict[str, str]] = {
    "StasisStart": {"args": "List[string]", "channel": "Channel"},
    "StasisEnd": {"channel": "Channel"},
    "Dial": {
        "caller": "Channel",
        "peer": "Channel",
        "forward": "string",
        "dialstring": "string",
        "dialstatus": "string",
    },
    "ChannelStateChange": {"channel": "Channel"},
    "ChannelDtmfReceived": {"digit": "string", "duration_ms": "int", "channel": "Channel"},
    "ChannelEnteredBridge": {"bridge": "Bridge", "channel": "Channel"},
    "ChannelLeftBridge": {"bridge": "Bridge", "channel": "Channel"},
    "ChannelHangupRequest": {"cause": "int", "soft": "boolean", "channel": "Channel"},
    "ChannelDestroyed": {"cause": "int", "cause_txt": "string", "channel": "Channel"},
    "ChannelVarset": {"variable": "string", "value": "string", "channel": "Channel"},
    "ChannelHold": {"channel": "Channel", "musicclass": "string"},
    "ChannelUnhold": {"channel": "Channel"},
    "BridgeDestroyed": {"bridge": "Bridge"},
    "PlaybackStarted": {"playback": "Playback"},
    "PlaybackContinuing": {"playback": "Playback"},
    "PlaybackFinished": {"playback": "Playback"},
    "RecordingStarted": {"recording": "LiveRecording"},
    "RecordingFinished": {"recording": "LiveRecording"},
    "RecordingFailed": {"recording": "LiveRecording"},
    "ApplicationReplaced": {},
}

_RESOURCE_MODELS = {
    "channels": ("CallerID", "DialplanCEP", "Channel"),
    "bridges": ("Bridge",),
    "playbacks": ("Playback",),
    "recordings": ("LiveRecording",),
}


def _model(name: str, fields: dict[str, str]) -> dict[str, Any]:
    return {"id": name, "properties": {key: {"type": kind} for key, kind in fields.items()}}


def resource_listing(base_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "11.0.0",
        "swaggerVersion": "1.1",
        "basePath": base_url,
        "apis": [
            {"path": f"/api-docs/{name}.{{format}}", "description": f"{name} resources"}
            for name in RESOURCES
        ],
    }


def api_declaration(resource: str, base_url: str) -> dict[str, Any] | None:
    if resource not in RESOURCES:
        return None
    apis: dict[str, list[dict[str, Any]]] = {}
    for op in OPERATIONS:
        if op.resource != resource:
            continue
        entry: dict[str, Any] = {
            "httpMethod": op.method,
            "nickname": op.nickname,
            "responseClass": op.response_class,
            "parameters": [
                {
                    "name": p.name,
                    "paramType": p.param_type,
                    "required": p.required,
                    "allowMultiple": False,
                    "dataType": p.data_type,
                }
                for p in op.params
            ],
        }
        if op.websocket:
            entry["upgrade"] = "websocket"
        apis.setdefault(op.path, []).append(entry)
    models: dict[str, Any] = {}
    if resource == "events":
        models = {
            **{name: _model(name, fields) for name, fields in _OBJECT_MODELS.items()},
            **{name: _model(name, fields) for name, fields in EVENT_MODELS.items()},
        }
    else:
        models = {
            name: _model(name, _OBJECT_MODELS[name]) for name in _RESOURCE_MODELS.get(resource, ())
        }
    return {
        "apiVersion": "11.0.0",
        "swaggerVersion": "1.1",
        "basePath": base_url,
        "resourcePath": f"/api-docs/{resource}.{{format}}",
        "apis": [{"path": path, "operations": ops} for path, ops in apis.items()],
        "models": models,
    }
