"""Recording a call (``record_call``) the way MixMonitor does, with a row per recording.

A snoop channel (spy ``both``) on the presser's channel carries what the presser says and hears,
i.e. both parties; it enters our app as a non-party leg of the call (role ``recorder:<name>``) and
is recorded with ``POST /channels/{snoop}/record`` as soon as it is in Stasis. Unlike
``POST /bridges/{id}/record`` this adds no member to the call's bridge, so a two-party bridge
stays a cheap two-party bridge instead of a transcoding mixer (issue 20).

Only the call's own task uses a recorder (flows ask it to); rows go to the write-behind journal
so the database is never on the call's path. A recording stopped by us is completed at once (so a
``toggle`` right after sees it stopped); Asterisk's RecordingFinished then refines the duration.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ...ari.gateway import AriGateway
from ...calls.feature import CallHandle
from ...calls.leg import Leg, Phase, Role
from ...errors import AriError, AriUnavailable, Gone, RecordingRefused
from ...metaflows.resolver import LegIdentity
from ...recordings import Recording, RecordingJournal
from .schemas import MAX_RECORDING_SECONDS

SNOOP_READY_ATTEMPTS = 8  # record requests while the new snoop channel enters Stasis

logger = logging.getLogger(__name__)


def recorder_role(name: str) -> str:
    """The role of the snoop leg recording ``name`` (one per recording: a stopped one's snoop
    may still be leaving while the next one starts)."""
    return f"{Role.RECORDER}:{name}"


def is_recorder(role: str) -> bool:
    return role.startswith(f"{Role.RECORDER}:")


def owner_of(identity: LegIdentity) -> tuple[str, str]:
    """Whose recording it is: the presser's user, else their device, else the account."""
    if identity.user_id:
        return "user", identity.user_id
    if identity.device_id:
        return "device", identity.device_id
    return "account", identity.account_id


@dataclass
class CallRecorder:
    call_id: str
    journal: RecordingJournal | None
    current: Recording | None = None
    masked: bool = False
    spied: str | None = None  # the channel the current recording's snoop listens to
    _ended: OrderedDict[str, Recording] = field(default_factory=OrderedDict)

    def _store(self, recording: Recording) -> None:
        if self.journal is not None:
            self.journal.submit(recording)

    @property
    def recording(self) -> bool:
        return self.current is not None

    async def start(
        self,
        call: CallHandle,
        gateway: AriGateway,
        presser: Leg,
        identity: LegIdentity,
        legs: list[str],
        *,
        fmt: str,
        time_limit: int | None,
        label: str | None,
    ) -> str:
        """Snoop on the presser's channel and record the snoop channel; a second start while
        recording changes nothing."""
        if self.current is not None:
            logger.info("call %s: already recording (%s)", self.call_id, self.current.name)
            return "already_recording"
        if call.phase is not Phase.CONNECTED:
            raise RecordingRefused("the call is not connected; nothing to record")
        owner_type, owner_id = owner_of(identity)
        recording = Recording(
            account_id=identity.account_id,
            owner_type=owner_type,
            owner_id=owner_id,
            call_id=self.call_id,
            legs=legs,
            format=fmt,
            label=label,
            asterisk=call.engine.settings.asterisk,
        )
        limit = min(time_limit or MAX_RECORDING_SECONDS, MAX_RECORDING_SECONDS)
        self.current = recording  # claimed before the request: a racing start sees it
        self.masked = False
        self.spied = presser.channel_id
        self._store(recording)
        role = recorder_role(recording.name)
        snoop_id = f"{recording.name}-snoop"
        call.add_leg(Leg(role, snoop_id, party=False))
        snooping = False
        try:
            await gateway.snoop(
                presser.channel_id, snoop_id, app_args=f"{Role.RECORDER},{self.call_id}"
            )
            snooping = True
            await self._record(gateway, snoop_id, recording, limit)
        except (AriError, AriUnavailable) as exc:
            if snooping:
                await call.safely(gateway.hangup(snoop_id))
            # Forget the snoop now: hung up before it entered Stasis, it sends no event that
            # would (a late StasisStart of it is hung up as a recorder no call knows).
            call.drop_leg(role)
            self._refused(recording, exc)
            raise RecordingRefused(f"cannot record: {exc}") from exc
        logger.info("call %s: recording %s (%s) by snoop", self.call_id, recording.name, fmt)
        return "started"

    @staticmethod
    async def _record(gateway: AriGateway, snoop_id: str, recording: Recording, limit: int) -> None:
        """Record the snoop channel. Asterisk answers the snoop request before the snoop
        channel's own thread has put it in Stasis, so a record right after it may get 409
        "not in Stasis": try again briefly (as for a dial right after a create)."""
        for attempt in range(SNOOP_READY_ATTEMPTS):
            try:
                await gateway.record_channel(
                    snoop_id, recording.name, recording.format, max_duration=limit
                )
                return
            except AriError as exc:
                if exc.status != 409 or attempt == SNOOP_READY_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.005 * (attempt + 1))

    def _refused(self, recording: Recording, exc: Exception) -> None:
        self.current = None
        recording.end("failed", duration=0.0, cause=f"Asterisk refused: {exc}")
        self._store(recording)

    async def stop(
        self, call: CallHandle, gateway: AriGateway | None, reason: str = "stopped"
    ) -> str:
        recording = self.current
        if recording is None:
            return "not_recording"
        self.current = None
        self.masked = False
        leg = call.legs.get(recorder_role(recording.name))
        if gateway is not None and not self._spied_gone(call):
            try:
                await gateway.stop_recording(recording.name)
            except Gone:
                pass  # it ended on its own (time limit, channel gone): its event may follow
            except (AriError, AriUnavailable) as exc:
                logger.warning("call %s: stopping %s: %s", self.call_id, recording.name, exc)
            if leg is not None and not leg.gone:
                await call.safely(gateway.hangup(leg.channel_id))
        recording.end("finished")
        self._remember(recording)
        self._store(recording)
        logger.info("call %s: recording %s %s", self.call_id, recording.name, reason)
        return "stopped"

    def _spied_gone(self, call: CallHandle) -> bool:
        """Has the channel the snoop listens to hung up? Then Asterisk has ended the snoop
        channel and its recording already (the audiohook goes with the channel, and
        res_stasis_snoop hangs the snoop up; the recording ends with its channel): stopping
        and hanging up would be two requests for nothing (issue 20)."""
        return any(leg.channel_id == self.spied and leg.gone for leg in call.legs.values())

    def on_snoop_gone(self, call: CallHandle, role: str) -> None:
        """The snoop channel left (we hung it up, or its party hung up): forget the leg; a
        recording still running on it has ended with it."""
        call.drop_leg(role)
        recording = self.current
        if recording is not None and recorder_role(recording.name) == role:
            self.current = None
            self.masked = False
            recording.end("finished")
            self._remember(recording)
            self._store(recording)
            logger.info("call %s: recording %s ended with its channel", self.call_id, role)

    async def mask(self, gateway: AriGateway, masked: bool) -> str:
        recording = self.current
        if recording is None:
            return "not_recording"
        if masked == self.masked:
            return "masked" if masked else "unmasked"
        try:
            await gateway.mute_recording(recording.name, masked)
        except (AriError, AriUnavailable) as exc:
            raise RecordingRefused(f"cannot {'mask' if masked else 'unmask'}: {exc}") from exc
        self.masked = masked
        return "masked" if masked else "unmasked"

    def on_event(self, event: dict[str, Any]) -> None:
        """RecordingFinished/Failed from Asterisk: the recording ended on its own (time limit,
        failure), or a recording we stopped turned out to have failed. Durations are ours,
        measured to the millisecond (Asterisk reports whole seconds)."""
        data = event.get("recording")
        if not isinstance(data, dict):
            return
        name = data.get("name")
        failed = event.get("type") == "RecordingFailed"
        cause = str(data.get("cause") or "failed")
        if self.current is not None and self.current.name == name:
            recording = self.current
            self.current = None
            self.masked = False
            if failed:
                recording.end("failed", cause=cause)
            else:
                recording.end("finished")
            self._remember(recording)
            self._store(recording)
            logger.info("call %s: recording %s %s", self.call_id, name, recording.state)
        elif failed and isinstance(name, str) and name in self._ended:
            recording = self._ended.pop(name)
            recording.end("failed", cause=cause)
            self._store(recording)

    def _remember(self, recording: Recording) -> None:
        self._ended[recording.name] = recording
        while len(self._ended) > 8:
            self._ended.popitem(last=False)
