"""The simulated Asterisk: channels, bridges, media, a tiny dialplan, phones, Stasis apps.

Behaviour follows what real Asterisk 22 does where the call engine depends on it (see the
captures in ``../shared/ari-captures``):

* ``ChannelDtmfReceived`` fires once per digit, at the digit's end, only on the channel that read
  it; in a bridge the digit is then written to the other members (no event there) unless the
  channel was added with ``absorbDTMF``. Two SIP channels in a ``mixing`` bridge without
  ``dtmf_events`` are bridged natively: no DTMF event at all.
* An ARI hangup gives ``ChannelHangupRequest {cause: 32, soft: true}`` (the soft-hangup flag),
  ``ChannelLeftBridge``, ``StasisEnd``, ``ChannelDestroyed {cause}``; a phone hanging up gives a
  ``ChannelHangupRequest`` without cause.
* A channel made with ``/channels/create`` gets ``StasisStart`` only once it answers.
* Commands answer at once; their effects arrive as events.
* Events for an application with no websocket are dropped; calls go on.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .model import (
    CAUSE_TEXT,
    HANGUP_REASONS,
    RECORDING_FORMATS,
    SOFTHANGUP_EXPLICIT,
    Bridge,
    CallerId,
    Channel,
    DialplanLocation,
    LiveRecording,
    Phone,
    Playback,
    StoredRecording,
    ari_time,
)
from .remote_media import RemoteMedia, remote_url

logger = logging.getLogger(__name__)

DEFAULT_CHANNELVARS = ("METAFLOWS_ACCOUNT_ID", "METAFLOWS_USER_ID", "METAFLOWS_DEVICE_ID")
MEDIA_SCHEMES = ("sound", "recording", "number", "digits", "characters", "tone")


class SimError(Exception):
    """An ARI error answer: HTTP status and Asterisk's ``{"message": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- dialplan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StasisApp:
    """``Stasis(app,args…)``; when the app is not connected, ``STASISSTATUS=FAILED`` and the
    channel goes on to the next priority."""

    app: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class DialPhone:
    """``Dial(PJSIP/<phone>,<timeout>)``: connects the channel to that phone, outside Stasis."""

    phone: str
    timeout: float = 30.0


@dataclass(frozen=True)
class Hangup:
    cause: int = 16


@dataclass(frozen=True)
class Application:
    """Any other dialplan application (e.g. VoiceMail): answers, and the caller 'hears' it."""

    name: str


DialplanAction = StasisApp | DialPhone | Hangup | Application


@dataclass
class Dialplan:
    extensions: dict[tuple[str, str], list[DialplanAction]] = field(default_factory=dict)

    def add(self, context: str, exten: str, *actions: DialplanAction) -> None:
        """Priorities 1, 2, … run the given actions in order."""
        self.extensions[(context, exten)] = list(actions)

    def lookup(self, context: str, exten: str, priority: int) -> DialplanAction | None:
        actions = self.extensions.get((context, exten))
        if actions is None or not 1 <= priority <= len(actions):
            return None
        return actions[priority - 1]


# -- applications and websockets -------------------------------------------------------------


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


class SimulatedAsterisk:
    def __init__(
        self,
        *,
        channelvars: tuple[str, ...] = DEFAULT_CHANNELVARS,
        timing: Timing | None = None,
        entity_id: str = "02:fc:00:00:00:01",
    ) -> None:
        self.channelvars = channelvars
        self.timing = timing or Timing()
        self.entity_id = entity_id
        self.dialplan = Dialplan()
        self.phones: dict[str, Phone] = {}
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.playbacks: dict[str, Playback] = {}
        self.live_recordings: dict[str, LiveRecording] = {}
        self.stored_recordings: dict[str, StoredRecording] = {}
        self.known_apps: set[str] = set()
        self.connections: list[AppConnection] = []
        self.startup_time = time.time()
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, query)
        self.event_log: list[dict[str, Any]] = []  # every event sent to an application
        # Asterisk 22 sometimes refuses a dial right after the create (409, not in Stasis
        # yet); tests set how many of the next dials to refuse that way.
        self.dial_refusals = 0
        # (method, path regex) → seconds every matching request is held before it is served.
        self.stalls: dict[tuple[str, str], float] = {}
        # (method, path regex) → (status, body) answered instead: a broken Asterisk or proxy.
        self.garbled: dict[tuple[str, str], tuple[int, str]] = {}
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

    # -- phones and inbound calls (the test's side) ------------------------------------------

    def add_phone(
        self,
        name: str,
        *,
        number: str | None = None,
        display_name: str | None = None,
        variables: dict[str, str] | None = None,
        on_call: str = "manual",
        answer_after: float = 0.0,
        online: bool = True,
        ring_first: bool = True,
    ) -> Phone:
        phone = Phone(
            name=name,
            number=number or name,
            display_name=display_name or name,
            variables=dict(variables or {}),
            on_call=on_call,
            answer_after=answer_after,
            online=online,
            ring_first=ring_first,
        )
        self.phones[name] = phone
        return phone

    def _phone_channel(self, phone: Phone, state: Any) -> Channel:
        channel = Channel(
            id=self._new_channel_id(),
            name=f"PJSIP/{phone.name}-{next(self._names):08x}",
            tech="PJSIP",
            resource=phone.name,
            created=time.time(),
            state=state,
            caller=CallerId(phone.display_name, phone.number),
            protocol_id=f"{uuid.uuid4().hex[:12]}@127.0.0.1",
            variables=dict(phone.variables),
            phone=phone,
        )
        self.channels[channel.id] = channel
        phone.channels.append(channel)
        return channel

    def place_call(self, phone: Phone, exten: str, context: str = "default") -> Channel:
        """The phone dials ``exten``; the dialplan at ``context`` decides what happens."""
        channel = self._phone_channel(phone, "Ring")
        channel.dialplan = DialplanLocation(context, exten, 1)
        self._run_dialplan(channel, context, exten, 1)
        self._touch()
        return channel

    def phone_answers(self, phone: Phone, channel: Channel | None = None) -> Channel:
        ringing = [channel] if channel is not None else phone.ringing_channels
        if not ringing or ringing[0].gone or ringing[0].state != "Ringing":
            raise SimError(409, f"{phone.name} has no ringing call")
        answered = ringing[0]
        self._answered(answered)
        self._touch()
        return answered

    def phone_rejects(self, phone: Phone, cause: int = 17) -> None:
        for channel in phone.ringing_channels:
            self._dial_failed(channel, "BUSY" if cause == 17 else "CONGESTION", cause)
        self._touch()

    def phone_hangs_up(self, phone: Phone, channel: Channel | None = None) -> None:
        target = channel or phone.active_channel
        if target is None or target.gone:
            raise SimError(409, f"{phone.name} has no call")
        if target.state == "Ringing":
            self._dial_failed(target, "BUSY", 17)
        else:
            self._hangup(target, cause=16, soft=False)
        self._touch()

    def phone_presses(self, channel: Channel, digit: str, duration_ms: int) -> None:
        """The digit ended on the phone's side of ``channel``: Asterisk reads it there."""
        if channel.gone or channel.state != "Up":
            return
        self._read_dtmf(channel, digit, duration_ms)
        self._touch()

    # -- DTMF ------------------------------------------------------------------------------

    def _read_dtmf(self, channel: Channel, digit: str, duration_ms: int) -> None:
        bridge = channel.bridge
        if bridge is not None and bridge.native:
            for other in bridge.channels:
                if other is not channel:
                    self._write_dtmf(other, digit)
            return
        self._channel_event(channel, "ChannelDtmfReceived", digit=digit, duration_ms=duration_ms)
        if bridge is not None:
            if not channel.absorb_dtmf:
                for other in bridge.channels:
                    if other is not channel:
                        self._write_dtmf(other, digit)
        elif channel.far is not None:
            self._write_dtmf(channel.far, digit)

    def _write_dtmf(self, channel: Channel, digit: str) -> None:
        """Asterisk sends a digit out on ``channel``: its far end hears it."""
        if channel.phone is not None:
            channel.phone.heard_dtmf.append(digit)
        elif channel.far is not None and channel.far.phone is not None:
            channel.far.phone.heard_dtmf.append(digit)

    # -- dialplan execution ----------------------------------------------------------------

    def _run_dialplan(self, channel: Channel, context: str, exten: str, priority: int) -> None:
        while True:
            action = self.dialplan.lookup(context, exten, priority)
            channel.dialplan = DialplanLocation(context, exten, priority)
            if action is None:
                channel.history.append("(end)")
                self._hangup(channel, cause=1 if priority == 1 else 16, soft=False, quiet=True)
                return
            if isinstance(action, StasisApp):
                channel.dialplan.app_name = "Stasis"
                channel.dialplan.app_data = ",".join((action.app, *action.args))
                channel.history.append(f"Stasis({channel.dialplan.app_data})")
                if self.registered(action.app):
                    channel.variables["STASISSTATUS"] = ""
                    channel.app = action.app
                    self._channel_event(channel, "StasisStart", args=list(action.args))
                    return
                channel.variables["STASISSTATUS"] = "FAILED"
                priority += 1
                continue
            if isinstance(action, DialPhone):
                channel.dialplan.app_name = "Dial"
                channel.dialplan.app_data = f"PJSIP/{action.phone},{action.timeout:g}"
                channel.history.append(f"Dial(PJSIP/{action.phone})")
                self._dialplan_dial(channel, action)
                return
            if isinstance(action, Application):
                channel.dialplan.app_name = action.name
                channel.history.append(action.name)
                if channel.state != "Up":
                    channel.state = "Up"
                return
            channel.history.append("Hangup")
            self._hangup(channel, cause=action.cause, soft=False, quiet=True)
            return

    def _dialplan_dial(self, channel: Channel, action: DialPhone) -> None:
        phone = self.phones.get(action.phone)
        if channel.state != "Up":
            channel.ringing = True
        if phone is None or not phone.online:
            channel.variables["DIALSTATUS"] = "CHANUNAVAIL"
            self._hangup(channel, cause=20, soft=False, quiet=True)
            return
        callee = self._phone_channel(phone, "Down")
        callee.caller = CallerId(channel.caller.name, channel.caller.number)
        callee.dial_caller = channel
        callee.far = channel
        channel.far = callee
        self._start_ringing(callee, timeout=action.timeout)

    # -- channels created by the application ---------------------------------------------

    def create_channel(
        self,
        endpoint: str,
        app: str,
        app_args: str | None,
        channel_id: str | None,
        originator: str | None,
        variables: dict[str, str],
    ) -> Channel:
        if channel_id is not None and channel_id in self.channels:
            raise SimError(409, "Channel with given unique ID already exists.")
        tech, _, resource = endpoint.partition("/")
        if tech == "Local":
            resource = resource.partition("/")[0]  # options such as /n
        if tech not in ("PJSIP", "Local") or not resource:
            raise SimError(400, "Invalid endpoint")
        if tech == "PJSIP" and resource not in self.phones:
            raise SimError(400, f"Endpoint {endpoint} not found")
        now = time.time()
        if tech == "Local":
            exten, _, context = resource.partition("@")
            name = f"Local/{exten}@{context or 'default'}-{next(self._names):08x};1"
        else:
            name = f"PJSIP/{resource}-{next(self._names):08x}"
        channel = Channel(
            id=channel_id or self._new_channel_id(),
            name=name,
            tech=tech,
            resource=resource,
            created=now,
            subscribers={app},
            create_app=app,
            create_args=app_args.split(",") if app_args else [],
            variables=dict(variables),
        )
        if tech == "PJSIP":
            phone = self.phones[resource]
            channel.phone = phone
            channel.variables = {**phone.variables, **variables}
            channel.protocol_id = f"{uuid.uuid4().hex[:12]}@127.0.0.1"
            phone.channels.append(channel)
        source = self.channels.get(originator) if originator else None
        if source is not None:
            channel.caller = CallerId(source.caller.name, source.caller.number)
            channel.connected = CallerId(source.caller.name, source.caller.number)
        self.channels[channel.id] = channel
        self._touch()
        return channel

    def dial(self, channel: Channel, caller_id: str | None, timeout: int) -> None:
        if channel.dial_started or channel.state != "Down" or channel.create_app is None:
            raise SimError(409, "Channel cannot be dialed.")
        if self.dial_refusals > 0:
            self.dial_refusals -= 1
            raise SimError(409, "Channel not in Stasis application")
        channel.dial_started = True
        channel.dial_caller = self.channels.get(caller_id) if caller_id else None
        if channel.tech == "Local":
            self._dial_local(channel, timeout)  # StasisStart first, then Dial "" (as seen)
        self._dial_progress(channel, "")
        if channel.tech != "Local":
            self._start_ringing(channel, timeout=float(timeout) if timeout else None)
        self._touch()

    def _dial_local(self, channel: Channel, timeout: int) -> None:
        """Seen on Asterisk 22: an app-created Local channel enters Stasis as soon as it is
        dialed (state Down), before its far end answers; the answer comes later as
        ChannelStateChange Up + Dial ANSWER."""
        channel.app = channel.create_app
        self._channel_event(channel, "StasisStart", args=list(channel.create_args))
        exten, _, context = channel.resource.partition("@")
        action = self.dialplan.lookup(context or "default", exten, 1)
        if isinstance(action, DialPhone):
            phone = self.phones.get(action.phone)
            if phone is None or not phone.online:
                self._later(0.001, lambda: self._local_dial_failed(channel, 20))
                return
            hidden = self._phone_channel(phone, "Down")
            hidden.caller = CallerId(channel.caller.name, channel.caller.number)
            hidden.far = channel
            hidden.dial_caller = channel
            channel.far = hidden
            limit = float(timeout) if timeout else action.timeout
            self._start_ringing(hidden, timeout=limit)
            return
        if isinstance(action, Application):
            self._later(0.001, lambda: self._answered(channel))
            return
        cause = 1 if action is None else 16
        self._later(0.001, lambda: self._local_dial_failed(channel, cause))

    def _start_ringing(self, channel: Channel, timeout: float | None) -> None:
        """``channel`` goes out to its phone; the phone decides what happens."""
        phone = channel.phone
        assert phone is not None
        if not phone.online:
            self._later(0.001, lambda: self._dial_failed(channel, "CHANUNAVAIL", 20))
            return
        if phone.on_call == "busy":
            self._later(phone.answer_after, lambda: self._dial_failed(channel, "BUSY", 17))
            return

        def ring() -> None:
            if channel.gone:
                return
            channel.state = "Ringing"
            self._channel_event(channel, "ChannelStateChange")
            local = channel.far
            if local is not None and local.tech == "Local" and local.create_app is not None:
                local.state = "Ringing"
                self._channel_event(local, "ChannelStateChange")
            self._dial_progress(channel, "RINGING")

        if phone.ring_first or phone.on_call != "answer":
            self._later(0.001, ring)
        else:
            channel.state = "Ringing"  # answers at once: no 180, no Ringing event
        if phone.on_call == "answer":
            self._later(phone.answer_after + 0.002, lambda: self._answer_if_ringing(channel))
        if timeout:
            channel.dial_timer = self._later(
                timeout, lambda: self._dial_failed(channel, "NOANSWER", 19)
            )

    def _answer_if_ringing(self, channel: Channel) -> None:
        if not channel.gone and channel.state == "Ringing":
            self._answered(channel)

    def _dial_progress(self, channel: Channel, status: str) -> None:
        """Dial events go to the app that dialed (the Local channel, for a hidden leg)."""
        dialed = channel
        if channel.create_app is None and channel.far is not None and channel.far.tech == "Local":
            dialed = channel.far
        if dialed.create_app is None:
            return
        fields: dict[str, Any] = {}
        if dialed.dial_caller is not None and not dialed.dial_caller.gone:
            fields["caller"] = self.snapshot(dialed.dial_caller)
        self._emit(
            dialed.apps,
            "Dial",
            **fields,
            peer=self.snapshot(dialed),
            forward="",
            dialstring=dialed.resource,
            dialstatus=status,
        )

    def _answered(self, channel: Channel) -> None:
        """The far end answered ``channel``."""
        if channel.dial_timer is not None:
            channel.dial_timer.cancel()
            channel.dial_timer = None
        channel.state = "Up"
        self._channel_event(channel, "ChannelStateChange")
        if channel.create_app is not None:
            self._dial_progress(channel, "ANSWER")
            if channel.app is None:  # a Local channel is in Stasis already
                channel.app = channel.create_app
                self._channel_event(channel, "StasisStart", args=list(channel.create_args))
            return
        origin = channel.far
        if origin is None:
            return
        if origin.tech == "Local" and origin.create_app is not None:
            self._answered(origin)
        elif origin.state != "Up":  # a dialplan Dial(): the caller is answered too
            origin.ringing = False
            origin.state = "Up"
            origin.variables["DIALSTATUS"] = "ANSWER"
            self._channel_event(origin, "ChannelStateChange")

    def _dial_failed(self, channel: Channel, status: str, cause: int) -> None:
        if channel.gone or channel.state == "Up":
            return
        if channel.dial_timer is not None:
            channel.dial_timer.cancel()
            channel.dial_timer = None
        origin = channel.far
        behind_local = origin is not None and origin.tech == "Local" and origin.create_app
        if not behind_local:  # a Local channel's app sees no BUSY/NOANSWER status
            self._dial_progress(channel, status)
        channel.far = None
        if origin is not None:
            origin.far = None
        self._hangup(channel, cause=cause, soft=False)
        if origin is None or origin.gone:
            return
        if origin.tech == "Local" and origin.create_app is not None:
            self._local_dial_failed(origin, cause)
        elif origin.app is None:  # a dialplan Dial() failed: go on at the next priority
            origin.ringing = False
            origin.variables["DIALSTATUS"] = status
            location = origin.dialplan
            self._run_dialplan(origin, location.context, location.exten, location.priority + 1)

    def _local_dial_failed(self, local: Channel, cause: int) -> None:
        """Seen on Asterisk 22: when the far end of an app-created Local channel gives up, the
        Local channel (in Stasis, unanswered) is hung up; no BUSY/NOANSWER Dial status."""
        self._hangup(local, cause=cause, soft=False)

    # -- hangups ----------------------------------------------------------------------------

    def hangup_by_app(self, channel: Channel, reason: str | None, reason_code: str | None) -> None:
        if reason_code is not None:
            try:
                cause = int(reason_code)
            except ValueError as exc:
                raise SimError(400, "Invalid reason for hangup provided") from exc
        elif reason is not None:
            if reason not in HANGUP_REASONS:
                raise SimError(400, "Invalid reason for hangup provided")
            cause = HANGUP_REASONS[reason]
        else:
            cause = 16
        if channel.state != "Up" and channel.dial_started:
            self._dial_progress(channel, "CANCEL")
        self._hangup(channel, cause=cause, soft=True)
        self._touch()

    def _hangup(self, channel: Channel, *, cause: int, soft: bool, quiet: bool = False) -> None:
        """Tear a channel down with Asterisk's event sequence; the far side follows."""
        if channel.gone:
            return
        channel.gone = True
        channel.hangup_cause = cause
        if channel.dial_timer is not None:
            channel.dial_timer.cancel()
            channel.dial_timer = None
        if soft:
            self._channel_event(
                channel, "ChannelHangupRequest", cause=SOFTHANGUP_EXPLICIT, soft=True
            )
        elif not quiet:
            self._channel_event(channel, "ChannelHangupRequest")
        for playback in list(channel.playbacks):
            self._finish_playback(playback, "done")
        for recording in list(self.live_recordings.values()):
            if recording.target is channel:
                self._finish_recording(recording, "done")
        if channel.bridge is not None:
            self._leave_bridge(channel)
        if channel.app is not None:
            self._channel_event(channel, "StasisEnd")
            channel.subscribers.add(channel.app)
            channel.app = None
        self._channel_event(
            channel, "ChannelDestroyed", cause=cause, cause_txt=CAUSE_TEXT.get(cause, "Unknown")
        )
        channel.subscribers.clear()
        self.channels.pop(channel.id, None)
        far = channel.far
        if far is not None and not far.gone:
            far.far = None
            if far.state == "Up" or far.app is None:
                self._hangup(far, cause=16, soft=False)
        self._touch()

    # -- Stasis operations on channels -------------------------------------------------------

    def require_channel(self, channel_id: str, *, in_stasis: bool = True) -> Channel:
        channel = self.channels.get(channel_id)
        if channel is None or channel.gone:
            raise SimError(404, "Channel not found")
        if in_stasis and channel.app is None:
            raise SimError(409, "Channel not in a Stasis application")
        return channel

    def answer(self, channel: Channel) -> None:
        if channel.state != "Up":
            channel.state = "Up"
            channel.ringing = False
            self._channel_event(channel, "ChannelStateChange")
        self._touch()

    def continue_in_dialplan(
        self, channel: Channel, context: str | None, exten: str | None, priority: int | None
    ) -> None:
        target_context = context or channel.dialplan.context
        target_exten = exten or channel.dialplan.exten
        if context is None and exten is None and priority is None:
            target_priority = channel.dialplan.priority + 1
        else:
            target_priority = priority or 1
        if channel.bridge is not None:
            self._leave_bridge(channel)
        for playback in list(channel.playbacks):
            self._finish_playback(playback, "done")
        channel.moh_class = None
        channel.ringing = False
        channel.silence = False
        app = channel.app
        self._channel_event(channel, "StasisEnd")
        channel.app = None
        if app is not None and channel.create_app is not None:
            channel.subscribers.add(app)
        self._later(
            0.001,
            lambda: (
                None
                if channel.gone
                else self._run_dialplan(channel, target_context, target_exten, target_priority)
            ),
        )
        self._touch()

    def set_variable(self, channel: Channel, name: str, value: str) -> None:
        channel.variables[name] = value
        self._channel_event(channel, "ChannelVarset", variable=name, value=value)
        self._touch()

    def get_variable(self, channel: Channel, name: str) -> str:
        if name not in channel.variables:
            raise SimError(404, "Provided variable was not found")
        return channel.variables[name]

    def hold(self, channel: Channel, on: bool) -> None:
        channel.held = on
        if on:
            self._channel_event(channel, "ChannelHold")
        else:
            self._channel_event(channel, "ChannelUnhold")
        self._touch()

    # -- bridges ----------------------------------------------------------------------------

    def create_bridge(self, types: str | None, bridge_id: str | None, name: str) -> Bridge:
        """A Stasis bridge; an application is subscribed to it once one of its channels joins."""
        if bridge_id is not None and bridge_id in self.bridges:
            raise SimError(409, "Bridge with the same bridgeId already exists")
        kinds = tuple(t.strip() for t in (types or "mixing").split(",") if t.strip())
        allowed = {"mixing", "holding", "dtmf_events", "proxy_media", "video_sfu", "video_single"}
        if not kinds or any(kind not in allowed for kind in kinds):
            raise SimError(400, "Invalid bridge type")
        bridge = Bridge(
            id=bridge_id or str(uuid.uuid4()),
            name=name,
            types=kinds,
            created=time.time(),
        )
        self.bridges[bridge.id] = bridge
        self._touch()
        return bridge

    def require_bridge(self, bridge_id: str) -> Bridge:
        bridge = self.bridges.get(bridge_id)
        if bridge is None or bridge.gone:
            raise SimError(404, "Bridge not found")
        return bridge

    def add_to_bridge(
        self, bridge: Bridge, channel_ids: list[str], absorb: bool, mute: bool
    ) -> None:
        channels = []
        for channel_id in channel_ids:
            channel = self.channels.get(channel_id)
            if channel is None or channel.gone:
                raise SimError(400, "Channel not found")
            if channel.app is None:
                raise SimError(422, "Channel not in Stasis application")
            channels.append(channel)
        for channel in channels:
            if channel.bridge is bridge:
                continue
            if channel.bridge is not None:
                self._leave_bridge(channel)
            channel.bridge = bridge
            channel.absorb_dtmf = absorb
            channel.bridge_mute = mute
            channel.ringing = False
            bridge.channels.append(channel)
            bridge.subscribers |= channel.apps
            self._bridge_event(bridge, channel, "ChannelEnteredBridge")
            self._record_heard(bridge)
        self._touch()

    def remove_from_bridge(self, bridge: Bridge, channel_id: str) -> None:
        channel = self.channels.get(channel_id)
        if channel is None or channel.gone:
            raise SimError(400, "Channel not found")
        if channel.bridge is not bridge:
            raise SimError(422, "Channel not in this bridge")
        self._leave_bridge(channel)
        self._touch()

    def _leave_bridge(self, channel: Channel) -> None:
        bridge = channel.bridge
        if bridge is None:
            return
        # Asterisk reports the technology the bridge had while the channel was in it.
        technology = bridge.technology
        bridge.channels.remove(channel)
        channel.bridge = None
        channel.absorb_dtmf = False
        channel.bridge_mute = False
        self._bridge_event(bridge, channel, "ChannelLeftBridge", technology)

    def _bridge_event(
        self, bridge: Bridge, channel: Channel, event_type: str, technology: str | None = None
    ) -> None:
        snapshot = bridge.json()
        if technology is not None:
            snapshot["technology"] = technology
        self._emit(
            channel.apps | bridge.subscribers,
            event_type,
            bridge=snapshot,
            channel=self.snapshot(channel),
        )

    def destroy_bridge(self, bridge: Bridge) -> None:
        for playback in list(bridge.playbacks):
            self._finish_playback(playback, "done")
        for recording in list(bridge.recordings):
            self._finish_recording(recording, "done")
        for channel in list(bridge.channels):
            self._leave_bridge(channel)
        bridge.gone = True
        self.bridges.pop(bridge.id, None)
        self._emit(bridge.subscribers, "BridgeDestroyed", bridge=bridge.json())
        self._touch()

    # -- media ------------------------------------------------------------------------------

    def _media_duration(self, uri: str) -> float:
        scheme, _, rest = uri.partition(":")
        if scheme == "tone":
            return self.timing.tone
        if scheme in ("digits", "characters", "number"):
            return self.timing.per_character * max(len(rest), 1)
        if scheme == "recording":
            stored = self.stored_recordings.get(rest)
            return stored.duration if stored else self.timing.default_sound
        return self.timing.sounds.get(rest, self.timing.default_sound)

    def play(
        self, target: Channel | Bridge, media: str, lang: str | None, playback_id: str | None
    ) -> Playback:
        if playback_id is not None and playback_id in self.playbacks:
            raise SimError(409, "Playback with the same id already exists")
        uris = [m for m in media.split(",") if m]
        playback = Playback(
            id=playback_id or str(uuid.uuid4()),
            media=uris or [media],
            target=target,
            language=lang or "en",
        )
        self.playbacks[playback.id] = playback
        target.playbacks.append(playback)
        if target.playbacks[0] is playback:  # playbacks on one target play one after another
            self._later(0.001, lambda: self._start_playback(playback))
        self._touch()
        return playback

    @staticmethod
    def _target_apps(target: Channel | Bridge) -> set[str]:
        """The applications that hear about media on a channel or bridge."""
        return set(target.subscribers) if isinstance(target, Bridge) else target.apps

    def _start_playback(self, playback: Playback) -> None:
        if playback.state != "queued":
            return
        scheme = playback.media_uri.partition(":")[0]
        if scheme not in MEDIA_SCHEMES:
            self._finish_playback(playback, "failed")
            return
        playback.state = "playing"
        self._emit(self._target_apps(playback.target), "PlaybackStarted", playback=playback.json())
        self._play_media(playback)

    def _play_media(self, playback: Playback) -> None:
        url = remote_url(playback.media_uri)
        if url is not None:  # Asterisk downloads it first (remote_media.py)
            self.remote_media.play(self, playback, url)
            return
        playback.timer = self._later(
            self._media_duration(playback.media_uri), lambda: self._next_media(playback)
        )

    def _next_media(self, playback: Playback) -> None:
        if playback.state not in ("playing", "continuing"):
            return
        if playback.index + 1 < len(playback.media):
            playback.index += 1
            playback.state = "continuing"
            self._emit(
                self._target_apps(playback.target), "PlaybackContinuing", playback=playback.json()
            )
            playback.state = "playing"
            self._play_media(playback)
            return
        self._finish_playback(playback, "done")

    def _finish_playback(self, playback: Playback, state: str) -> None:
        if playback.state in ("done", "failed"):
            return
        if playback.timer is not None:
            playback.timer.cancel()
        playback.state = state
        queue = playback.target.playbacks
        was_first = bool(queue) and queue[0] is playback
        if playback in queue:
            queue.remove(playback)
        if was_first and queue and not getattr(playback.target, "gone", False):
            following = queue[0]
            self._later(0.001, lambda: self._start_playback(following))
        self.playbacks.pop(playback.id, None)
        self._emit(self._target_apps(playback.target), "PlaybackFinished", playback=playback.json())
        if isinstance(playback.target, Bridge):
            self._record_heard(playback.target)
        self._touch()

    def stop_playback(self, playback_id: str) -> None:
        playback = self.playbacks.get(playback_id)
        if playback is None:
            raise SimError(404, "The playback cannot be found")
        self._finish_playback(playback, "done")

    def record(
        self,
        target: Channel | Bridge,
        name: str,
        fmt: str,
        max_duration: int | None,
        if_exists: str | None,
    ) -> LiveRecording:
        if fmt not in RECORDING_FORMATS:
            raise SimError(422, "The format specified is unknown on this system")
        if not name or ".." in name.split("/") or name.startswith("/"):
            raise SimError(400, "Invalid parameters")
        policy = if_exists or "fail"
        if policy not in ("fail", "overwrite", "append"):
            raise SimError(400, "Invalid parameters")
        if name in self.live_recordings:
            raise SimError(409, "A recording with the same name already exists on the system")
        if name in self.stored_recordings and policy == "fail":
            raise SimError(409, "A recording with the same name already exists on the system")
        recording = LiveRecording(name=name, format=fmt, target=target)
        self.live_recordings[name] = recording
        if isinstance(target, Bridge):
            target.recordings.append(recording)
        self._later(0.001, lambda: self._start_recording(recording, max_duration))
        self._touch()
        return recording

    def _start_recording(self, recording: LiveRecording, max_duration: int | None) -> None:
        if recording.state != "queued":
            return
        recording.state = "recording"
        recording.started = time.time()
        self._record_heard_one(recording)
        self._emit(
            self._target_apps(recording.target), "RecordingStarted", recording=recording.json()
        )
        if max_duration:
            recording.timer = self._later(
                max_duration, lambda: self._finish_recording(recording, "done")
            )

    def _record_heard(self, bridge: Bridge) -> None:
        for recording in bridge.recordings:
            self._record_heard_one(recording)

    def _record_heard_one(self, recording: LiveRecording) -> None:
        if recording.state != "recording" or recording.muted:
            return
        target = recording.target
        members = target.channels if isinstance(target, Bridge) else [target]
        for channel in members:
            if "in" not in channel.muted and not channel.bridge_mute:
                recording.heard.add(self.party_name(channel))

    def _finish_recording(self, recording: LiveRecording, state: str) -> None:
        if recording.state in ("done", "failed", "canceled"):
            return
        if recording.timer is not None:
            recording.timer.cancel()
        was_recording = recording.state == "recording"
        if recording.muted_since is not None:
            recording.muted_seconds += time.time() - recording.muted_since
            recording.muted_since = None
        recording.state = state
        recording.ended = time.time()
        self.live_recordings.pop(recording.name, None)
        if isinstance(recording.target, Bridge) and recording in recording.target.recordings:
            recording.target.recordings.remove(recording)
        if state == "done" and was_recording:
            self.stored_recordings[recording.name] = StoredRecording(
                name=recording.name,
                format=recording.format,
                duration=recording.ended - recording.started,
                muted_seconds=recording.muted_seconds,
                heard=frozenset(recording.heard),
            )
        self._emit(
            self._target_apps(recording.target), "RecordingFinished", recording=recording.json()
        )
        self._touch()

    def require_live(self, name: str) -> LiveRecording:
        recording = self.live_recordings.get(name)
        if recording is None:
            raise SimError(404, "Recording not found")
        return recording

    def stop_recording(self, name: str, cancel: bool = False) -> None:
        recording = self.require_live(name)
        self._finish_recording(recording, "canceled" if cancel else "done")

    def mute_recording(self, name: str, on: bool) -> None:
        recording = self.require_live(name)
        if recording.state != "recording":
            raise SimError(409, "Recording not in session")
        if on and not recording.muted:
            recording.muted = True
            recording.muted_since = time.time()
        elif not on and recording.muted:
            recording.muted = False
            if recording.muted_since is not None:
                recording.muted_seconds += time.time() - recording.muted_since
            recording.muted_since = None
            self._record_heard_one(recording)
        self._touch()

    def recording_audio(self, name: str) -> tuple[bytes, str]:
        stored = self.stored_recordings.get(name)
        if stored is None:
            raise SimError(404, "Recording not found")
        return wav_of_silence(stored.duration), "audio/wav" if stored.format.startswith(
            "wav"
        ) else "application/octet-stream"

    # -- what people hear (observations for tests) ------------------------------------------

    def party_name(self, channel: Channel) -> str:
        """Who is behind a channel: its phone, or the phone behind a Local/dialplan leg."""
        if channel.phone is not None:
            return channel.phone.name
        if channel.far is not None and channel.far.phone is not None:
            return channel.far.phone.name
        return channel.name

    def hears(self, channel: Channel) -> tuple[str, str]:
        """What the person behind ``channel`` hears: (kind, detail)."""
        if channel.gone:
            return ("hungup", "")
        if channel.muted & {"out"} or channel.silence:
            return ("silence", "")
        if channel.playbacks and channel.playbacks[0].state == "playing":
            media = channel.playbacks[0].media_uri
            if media.startswith("tone:ring"):
                return ("ringing", "")  # a ringing tone is ringing to the listener
            return ("playback", media)
        if channel.moh_class is not None:
            return ("moh", channel.moh_class)
        if channel.ringing and channel.state != "Up":
            return ("ringing", "")
        bridge = channel.bridge
        if bridge is not None:
            playing = [p for p in bridge.playbacks if p.state == "playing"]
            if playing:
                return ("playback", playing[0].media_uri)
            if bridge.moh_class is not None:
                return ("moh", bridge.moh_class)
            others = sorted(
                self.party_name(c)
                for c in bridge.channels
                if c is not channel and "in" not in c.muted and not c.bridge_mute
            )
            return ("party", ",".join(others)) if others else ("silence", "")
        if channel.far is not None and channel.far.state == "Up" and channel.state == "Up":
            source = channel.far
            if source.tech == "Local" and source.app is not None:
                return self.hears(source)  # what the Local channel gets, the phone hears
            return ("party", self.party_name(source))
        if channel.far is not None and channel.far.state != "Up":
            return ("ringing", "")
        if channel.app is None and channel.dialplan.app_name not in ("", "Stasis", "Dial"):
            return ("application", channel.dialplan.app_name)
        return ("silence", "")

    def phone_hears(self, phone: Phone) -> tuple[str, str]:
        channel = phone.active_channel
        return ("idle", "") if channel is None else self.hears(channel)

    # -- whole-system operations ------------------------------------------------------------

    def restart(self) -> None:
        """Asterisk restarts: every call and websocket is gone, a new startup time."""
        for connection in list(self.connections):
            self.disconnect_app(connection)
        for channel in list(self.channels.values()):
            channel.gone = True
            if channel.dial_timer is not None:
                channel.dial_timer.cancel()
        for playback in self.playbacks.values():
            if playback.timer is not None:
                playback.timer.cancel()
        self.remote_media.cancel()
        for recording in self.live_recordings.values():
            if recording.timer is not None:
                recording.timer.cancel()
        self.channels.clear()
        self.bridges.clear()
        self.playbacks.clear()
        self.live_recordings.clear()
        self.known_apps.clear()
        self.startup_time = time.time()
        self._epoch = int(self.startup_time) + 1
        self._touch()

    def application_json(self, name: str) -> dict[str, Any]:
        if name not in self.known_apps:
            raise SimError(404, "Application does not exist.")
        return {
            "name": name,
            "channel_ids": [c.id for c in self.channels.values() if name in c.apps],
            "bridge_ids": [b.id for b in self.bridges.values() if name in b.subscribers],
            "endpoint_ids": [],
            "device_names": [],
            "events_allowed": [],
            "events_disallowed": [],
        }

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


def wav_of_silence(seconds: float, rate: int = 8000) -> bytes:
    """A valid 16-bit mono WAV file of ``seconds`` of silence."""
    samples = max(int(seconds * rate), 1)
    data_size = samples * 2
    header = b"RIFF" + (36 + data_size).to_bytes(4, "little") + b"WAVEfmt "
    header += (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
    header += rate.to_bytes(4, "little") + (rate * 2).to_bytes(4, "little")
    header += (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    header += b"data" + data_size.to_bytes(4, "little")
    return header + bytes(data_size)
