"""Channels: phones placing and taking calls, DTMF, dialing, answering, hangups, and the Stasis
operations on a channel."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from .base import SimError
from .bridges import BridgesSim
from .model import (
    CAUSE_TEXT,
    HANGUP_REASONS,
    SOFTHANGUP_EXPLICIT,
    CallerId,
    Channel,
    DialplanLocation,
    Phone,
    dial_status_of_cause,
)


class ChannelsSim(BridgesSim):
    # -- seams the dialplan layer (dialplan.py) fills ----------------------------------------

    def _run_dialplan(self, channel: Channel, context: str, exten: str, priority: int) -> None:
        """Run the dialplan from ``context,exten,priority`` on ``channel``."""
        raise NotImplementedError

    def _dial_local(self, channel: Channel, timeout: int, *, enter_stasis: bool = True) -> bool:
        """An app-created Local channel is dialed: its far end runs the dialplan (False: no
        such extension, and the channel is hung up)."""
        raise NotImplementedError

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
        forward_to: str | None = None,
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
            forward_to=forward_to,
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

    def send_dtmf(
        self, channel: Channel, dtmf: str, before: int, between: int, duration: int, after: int
    ) -> None:
        """``POST /channels/{id}/dtmf``, as Asterisk 22's control.c does it: the request is
        queued on the channel (answered at once), and the channel's queued requests play one
        after another. In a bridge Asterisk writes the digits straight out on the channel
        (``ast_dtmf_stream_external``): its far end hears them, nobody else does, and no
        ChannelDtmfReceived is raised. Each digit lasts ``duration`` ms with ``between`` ms
        after it; ``w``/``W`` wait 0.5/1 s; the phone hears a digit when it ends."""
        loop = asyncio.get_running_loop()
        at = max(loop.time(), channel.dtmf_out_until) + max(before, 0) / 1000
        gap = (between if between > 0 else 100) / 1000
        for digit in dtmf:
            if digit in "wW":
                at += 0.5 if digit == "w" else 1.0
                continue
            if digit.upper() not in "0123456789*#ABCD":
                continue
            at += max(duration, 0) / 1000
            loop.call_at(at, self._play_sent_digit, channel, digit.upper())
            at += gap
        channel.dtmf_out_until = at + max(after, 0) / 1000

    def _play_sent_digit(self, channel: Channel, digit: str) -> None:
        if not channel.gone:
            self._write_dtmf(channel, digit)
            self._touch()

    def _write_dtmf(self, channel: Channel, digit: str) -> None:
        """Asterisk sends a digit out on ``channel``: its far end hears it."""
        if channel.phone is not None:
            channel.phone.heard_dtmf.append(digit)
        elif channel.far is not None and channel.far.phone is not None:
            channel.far.phone.heard_dtmf.append(digit)

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
        if (
            tech not in ("PJSIP", "Local")
            or not resource
            or (tech == "PJSIP" and resource not in self.phones)
        ):
            # Asterisk 22 (checked): the channel driver cannot request it.
            raise SimError(500, "Allocation failed", key="error")
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

    def originate(
        self,
        endpoint: str,
        app: str,
        app_args: str | None,
        channel_id: str | None,
        originator: str | None,
        variables: dict[str, str],
        timeout: int,
    ) -> Channel:
        """``POST /channels/{id}`` with ``app``, as Asterisk 22 (res/ari/resource_channels.c,
        main/dial.c; captured): the channel is dialed at once from its own thread, the app is
        subscribed to it and sees its Dial progress (no caller), and it enters the app only
        once answered: Dial ANSWER, then StasisStart. A far end that gives up sends the
        dialer's status for its cause (ast_hangup_cause_to_dial_status) before
        ChannelDestroyed; the timeout (-1: none, 0: 30 s) hangs it up with cause 19 and no
        status. A Local channel's far half, to which the app is subscribed too, is the phone
        channel it rings, under the id Asterisk gives the ";2" half (``<id>;2``)."""
        if originator is not None:
            source = self.channels.get(originator)
            if source is None or source.gone:
                raise SimError(400, "Provided originator channel was not found")
        channel = self.create_channel(endpoint, app, app_args, channel_id, originator, variables)
        channel.originated = True
        channel.dial_started = True
        if channel.tech == "Local":
            if self._dial_local(channel, 0, enter_stasis=False):
                self._dial_progress(channel, "")
        else:
            self._dial_progress(channel, "")
            self._start_ringing(channel, timeout=None)
        limit = 30 if timeout == 0 else timeout
        if limit > 0 and not channel.gone:
            channel.dial_timer = self._later(
                float(limit), lambda: self._originate_timed_out(channel)
            )
        self._touch()
        return channel

    def _originate_timed_out(self, channel: Channel) -> None:
        channel.dial_timer = None
        if not channel.gone and channel.state != "Up":
            self._hangup(channel, cause=19, soft=False)

    def snoop(
        self,
        spied: Channel,
        *,
        spy: str | None,
        whisper: str | None,
        app: str,
        app_args: str | None,
        snoop_id: str | None,
    ) -> Channel:
        """A snoop channel on ``spied``, as Asterisk 22's ``stasis_app_control_snoop``: the spied
        channel need not be in Stasis; the snoop channel is Up at once and enters ``app`` with
        StasisStart (carrying ``appArgs``) a moment after the answer, from its own thread."""
        directions = ("none", "both", "out", "in")
        spy, whisper = spy or "none", whisper or "none"
        if spy not in directions:
            raise SimError(400, "Invalid direction specified for spy")
        if whisper not in directions:
            raise SimError(400, "Invalid direction specified for whisper")
        if spy == "none" and whisper == "none":
            raise SimError(400, "Direction must be specified for at least spy or whisper")
        if not app:
            raise SimError(400, "Application name is required")
        if snoop_id is not None and snoop_id in self.channels:
            raise SimError(500, "Snoop channel could not be created")
        now = time.time()
        channel = Channel(
            id=snoop_id or self._new_channel_id(),
            name=f"Snoop/{spied.id}-{next(self._names):08x}",
            tech="Snoop",
            resource=spied.id,
            created=now,
            state="Up",
            spied=spied,
            spy=spy,
            whisper=whisper,
        )
        args = app_args.split(",") if app_args else []
        channel.dialplan.app_name = "Stasis"
        channel.dialplan.app_data = ",".join([app, *args])
        spied.snoops.append(channel)
        self.channels[channel.id] = channel

        def enter() -> None:
            if channel.gone:
                return
            channel.app = app
            self._channel_event(channel, "StasisStart", args=args)

        self._later(0.001, enter)
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
        target = self.phones.get(phone.forward_to or "")
        if channel.originated and target is not None:
            self._later(0.001, lambda: self._forwarded(channel, target))
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

    def _forwarded(self, channel: Channel, target: Phone) -> None:
        """Asterisk's dialer follows a 302 (main/dial.c handle_call_forward): a new channel
        rings the target, with the same app and arguments once answered; the app, subscribed
        to the original only, gets ``Dial CANCEL`` naming the new one ``forwarded``, and the
        original is hung up."""
        if channel.gone:
            return
        new = self._phone_channel(target, "Down")
        new.create_app, new.create_args = channel.create_app, list(channel.create_args)
        new.originated = new.dial_started = True
        new.caller = CallerId(channel.caller.name, channel.caller.number)
        self._emit(
            channel.apps,
            "Dial",
            peer=self.snapshot(channel),
            forwarded=self.snapshot(new),
            forward=f"PJSIP/{target.name}",
            dialstring=channel.resource,
            dialstatus="CANCEL",
        )
        self._hangup(channel, cause=16, soft=False)
        self._start_ringing(new, timeout=None)

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
            self._dial_progress(
                channel, dial_status_of_cause(cause) if channel.originated else status
            )
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
        Local channel (in Stasis, unanswered) is hung up; no BUSY/NOANSWER Dial status. An
        originated one is not in Stasis: its dialer reports the status first."""
        if local.originated and not local.gone:
            self._dial_progress(local, dial_status_of_cause(cause))
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
        if channel.spied is not None and channel in channel.spied.snoops:
            channel.spied.snoops.remove(channel)
        for snoop in list(channel.snoops):  # the audiohook goes with the spied channel
            self._hangup(snoop, cause=16, soft=False)
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

    def set_variable(self, channel: Channel, name: str, value: str) -> None:
        if name.upper().startswith("PITCH_SHIFT(") and not _pitch_shift_ok(name, value):
            raise SimError(400, "Failed to execute function")  # func_pitchshift refused it
        channel.variables[name] = value
        self._channel_event(channel, "ChannelVarset", variable=name, value=value)
        self._touch()

    def get_variable(self, channel: Channel, name: str) -> str:
        if name not in channel.variables:
            raise SimError(404, "Provided variable was not found")
        return channel.variables[name]

    def hold(self, channel: Channel, on: bool) -> None:
        """ARI's hold: ``ast_indicate(HOLD)`` towards the channel's device. chan_pjsip then
        plays the default music on hold to it (or, with ``moh_passthrough``, re-INVITEs the
        phone on hold). No ChannelHold/ChannelUnhold: Asterisk publishes those only for a hold
        a device asks for (``ast_queue_hold``, a bridged channel's hold frame)."""
        channel.held = on
        self._touch()

    def phone_holds(self, channel: Channel, on: bool, moh_class: str | None = None) -> None:
        """The person presses hold on the phone (a re-INVITE): Asterisk reports it."""
        if on:
            fields = {"musicclass": moh_class} if moh_class else {}
            self._channel_event(channel, "ChannelHold", **fields)
        else:
            self._channel_event(channel, "ChannelUnhold")
        self._touch()


_PITCH_WORDS = ("highest", "higher", "high", "low", "lower", "lowest")


def _pitch_shift_ok(name: str, value: str) -> bool:
    """What func_pitchshift.c accepts: rx, tx or both; a word, or 0 < amount <= 4."""
    direction = name[len("PITCH_SHIFT(") :].rstrip(")").lower()
    if direction not in ("rx", "tx", "both"):
        return False
    if value.lower() in _PITCH_WORDS:
        return True
    try:
        amount = float(value)
    except ValueError:
        return False
    return 0 < amount <= 4
