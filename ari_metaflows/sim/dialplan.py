"""The dialplan: its applications, running it on a channel, Local channels, and channels sent
back to it from Stasis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .channels import ChannelsSim
from .model import CallerId, Channel, DialplanLocation


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


class DialplanSim(ChannelsSim):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.dialplan = Dialplan()

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

    def _dial_local(self, channel: Channel, timeout: int, *, enter_stasis: bool = True) -> bool:
        """Seen on Asterisk 22: an app-created Local channel enters Stasis as soon as it is
        dialed (state Down), before its far end answers; the answer comes later as
        ChannelStateChange Up + Dial ANSWER. An originated one enters only once answered, and
        to an extension that does not exist its dialer cannot even call it: it is hung up
        (cause 1) with no Dial event at all (main/dial.c begin_dial_channel). False then."""
        if enter_stasis:
            channel.app = channel.create_app
            self._channel_event(channel, "StasisStart", args=list(channel.create_args))
        exten, _, context = channel.resource.partition("@")
        action = self.dialplan.lookup(context or "default", exten, 1)
        if isinstance(action, DialPhone):
            phone = self.phones.get(action.phone)
            if phone is None or not phone.online:
                self._later(0.001, lambda: self._local_dial_failed(channel, 20))
                return True
            hidden = self._phone_channel(phone, "Down")
            if not enter_stasis:  # originated: the app is subscribed to the far half too,
                # which Asterisk names "<id>;2" (main/core_unreal.c)
                del self.channels[hidden.id]
                hidden.id = f"{channel.id};2"
                self.channels[hidden.id] = hidden
                hidden.subscribers.update(channel.subscribers)
            hidden.caller = CallerId(channel.caller.name, channel.caller.number)
            hidden.far = channel
            hidden.dial_caller = channel
            channel.far = hidden
            limit = float(timeout) if timeout else action.timeout
            self._start_ringing(hidden, timeout=limit)
            return True
        if isinstance(action, Application):
            self._later(0.001, lambda: self._answered(channel))
            return True
        if action is None and not enter_stasis:
            self._later(0.001, lambda: self._hangup(channel, cause=1, soft=False))
            return False
        cause = 1 if action is None else 16
        self._later(0.001, lambda: self._local_dial_failed(channel, cause))
        return True

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
