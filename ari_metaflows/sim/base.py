"""The state every resource of the simulated Asterisk shares: ids, timers, events, apps.

``SimBase`` holds every table (channels, bridges, playbacks, recordings, phones, websockets) and
the one way events reach applications; each resource adds its operations in a layer on top
(faults → media → bridges → channels → dialplan, see ``core.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .model import (
    Bridge,
    Channel,
    LiveRecording,
    Phone,
    Playback,
    StoredRecording,
    ari_time,
)
from .remote_media import RemoteMedia

DEFAULT_CHANNELVARS = ("METAFLOWS_ACCOUNT_ID", "METAFLOWS_USER_ID", "METAFLOWS_DEVICE_ID")


class SimError(Exception):
    """An ARI error answer: HTTP status and Asterisk's ``{"message": ...}`` (``{"error": ...}``
    for the few answers Asterisk words that way, ``key``)."""

    def __init__(self, status: int, message: str, key: str = "message") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.key = key


class AppConnection:
    """One websocket subscribed to one or more applications; events queue for its writer."""

    def __init__(self, apps: set[str], subscribe_all: bool) -> None:
        self.apps = apps
        self.subscribe_all = subscribe_all
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)


@dataclass
class Timing:
    """How long simulated media and people take (seconds)."""

    default_sound: float = 0.3
    per_character: float = 0.15
    tone: float = 3600.0
    sounds: dict[str, float] = field(default_factory=dict)


class SimBase:
    """Shared state and plumbing; the resource layers add the operations."""

    def __init__(self, *, channelvars: tuple[str, ...], timing: Timing, entity_id: str) -> None:
        self.channelvars = channelvars
        self.timing = timing
        self.entity_id = entity_id
        self.phones: dict[str, Phone] = {}
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.playbacks: dict[str, Playback] = {}
        self.live_recordings: dict[str, LiveRecording] = {}
        self.event_filters: dict[str, frozenset[str]] = {}  # app → event types it allows
        self.stored_recordings: dict[str, StoredRecording] = {}
        self.known_apps: set[str] = set()
        self.connections: list[AppConnection] = []
        self.startup_time = time.time()
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, query)
        self.event_log: list[dict[str, Any]] = []  # every event sent to an application
        self.remote_media = RemoteMedia()  # sound:http://… downloads (res_http_media_cache)
        self._ids = itertools.count(1)
        self._names = itertools.count(1)
        self._changed = asyncio.Event()
        self._epoch = int(self.startup_time)

    # -- helpers ---------------------------------------------------------------------------

    def _touch(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true (re-checked after every state change)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    def _later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(delay, 0.0), self._guarded(callback))

    def _guarded(self, callback: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                callback()
            finally:
                self._touch()

        return run

    def _new_channel_id(self) -> str:
        return f"{self._epoch}.{next(self._ids)}"

    def registered(self, app: str) -> bool:
        return any(app in c.apps for c in self.connections if not c.closed)

    # -- events ----------------------------------------------------------------------------

    def _emit(self, apps: set[str], event_type: str, **fields: Any) -> None:
        for app in sorted(apps):
            connection = next(
                (c for c in reversed(self.connections) if not c.closed and app in c.apps), None
            )
            if connection is None:
                continue  # no websocket: the event is lost, as with Asterisk
            allowed = self.event_filters.get(app)
            if allowed is not None and event_type not in allowed:
                continue  # the app's eventFilter leaves it out
            event = {
                "type": event_type,
                "timestamp": ari_time(time.time()),
                **fields,
                "asterisk_id": self.entity_id,
                "application": app,
            }
            self.event_log.append(event)
            connection.queue.put_nowait(event)

    def _channel_event(self, channel: Channel, event_type: str, **fields: Any) -> None:
        self._emit(channel.apps, event_type, **fields, channel=self.snapshot(channel))

    def snapshot(self, channel: Channel) -> dict[str, Any]:
        return channel.json(self.channelvars)

    def connect_app(self, apps: set[str], subscribe_all: bool = False) -> AppConnection:
        """A websocket subscribes; an older one for the same app gets ApplicationReplaced."""
        for old in self.connections:
            taken = old.apps & apps
            if taken and not old.closed:
                for app in sorted(taken):
                    old.queue.put_nowait(
                        {
                            "type": "ApplicationReplaced",
                            "timestamp": ari_time(time.time()),
                            "asterisk_id": self.entity_id,
                            "application": app,
                        }
                    )
                old.apps = old.apps - taken
        connection = AppConnection(set(apps), subscribe_all)
        self.connections.append(connection)
        self.known_apps |= apps
        self._touch()
        return connection

    def disconnect_app(self, connection: AppConnection) -> None:
        connection.close()
        if connection in self.connections:
            self.connections.remove(connection)
        self._touch()

    def party_name(self, channel: Channel) -> str:
        """Who is behind a channel: its phone, or the phone behind a Local/dialplan leg."""
        if channel.phone is not None:
            return channel.phone.name
        if channel.far is not None and channel.far.phone is not None:
            return channel.far.phone.name
        return channel.name

    # -- applications and the system (GET /applications, GET /asterisk/info) ---------------

    def application_json(self, name: str) -> dict[str, Any]:
        if name not in self.known_apps:
            raise SimError(404, "Application does not exist.")
        return {
            "name": name,
            "channel_ids": [c.id for c in self.channels.values() if name in c.apps],
            "bridge_ids": [b.id for b in self.bridges.values() if name in b.subscribers],
            "endpoint_ids": [],
            "device_names": [],
            "events_allowed": [{"type": t} for t in sorted(self.event_filters.get(name, ()))],
            "events_disallowed": [],
        }

    def set_event_filter(self, name: str, allowed: list[Any] | None) -> None:
        """PUT /applications/{app}/eventFilter: only ``allowed`` event types reach the app
        (an empty or absent list: every type, as Asterisk does)."""
        if name not in self.known_apps:
            raise SimError(404, "Application does not exist.")
        types: set[str] = set()
        for item in allowed or []:
            if not isinstance(item, dict) or not isinstance(item.get("type"), str):
                raise SimError(400, "Invalid filter")
            types.add(item["type"])
        if types:
            self.event_filters[name] = frozenset(types)
        else:
            self.event_filters.pop(name, None)

    def info_json(self) -> dict[str, Any]:
        return {
            "build": {
                "os": "Linux",
                "kernel": "sim",
                "machine": "x86_64",
                "options": "",
                "date": "",
                "user": "sim",
            },
            "system": {"version": "22.10.1-sim", "entity_id": self.entity_id},
            "config": {"name": "", "default_language": "en", "setid": {"user": "", "group": ""}},
            "status": {
                "startup_time": ari_time(self.startup_time),
                "last_reload_time": ari_time(self.startup_time),
            },
        }
