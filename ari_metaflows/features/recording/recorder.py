"""Recording a call's mix through its bridge (``record_call``), with a row per recording.

Only the call's own task uses a recorder (flows ask it to); rows go to the write-behind journal
so the database is never on the call's path. A recording stopped by us is completed at once (so a
``toggle`` right after sees it stopped); Asterisk's RecordingFinished then refines the duration.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ...ari.gateway import AriGateway
from ...errors import AriError, AriUnavailable, Gone, RecordingRefused
from ...metaflows.resolver import LegIdentity
from ...recordings import Recording, RecordingJournal
from .schemas import MAX_RECORDING_SECONDS

logger = logging.getLogger(__name__)


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
    _ended: OrderedDict[str, Recording] = field(default_factory=OrderedDict)

    def _store(self, recording: Recording) -> None:
        if self.journal is not None:
            self.journal.submit(recording)

    @property
    def recording(self) -> bool:
        return self.current is not None

    async def start(
        self,
        gateway: AriGateway,
        bridge_id: str | None,
        identity: LegIdentity,
        legs: list[str],
        *,
        fmt: str,
        time_limit: int | None,
        label: str | None,
    ) -> str:
        """Start recording the bridge; a second start while recording changes nothing."""
        if self.current is not None:
            logger.info("call %s: already recording (%s)", self.call_id, self.current.name)
            return "already_recording"
        if bridge_id is None:
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
        )
        limit = min(time_limit or MAX_RECORDING_SECONDS, MAX_RECORDING_SECONDS)
        self.current = recording  # claimed before the request: a racing start sees it
        self._store(recording)
        try:
            await gateway.record_bridge(bridge_id, recording.name, fmt, max_duration=limit)
        except (AriError, AriUnavailable) as exc:
            self.current = None
            recording.end("failed", duration=0.0, cause=f"Asterisk refused: {exc}")
            self._store(recording)
            raise RecordingRefused(f"cannot record: {exc}") from exc
        self.masked = False
        logger.info("call %s: recording %s (%s)", self.call_id, recording.name, fmt)
        return "started"

    async def stop(self, gateway: AriGateway | None, reason: str = "stopped") -> str:
        recording = self.current
        if recording is None:
            return "not_recording"
        self.current = None
        self.masked = False
        if gateway is not None:
            try:
                await gateway.stop_recording(recording.name)
            except Gone:
                pass  # it ended on its own (time limit, bridge gone) — its event may follow
            except (AriError, AriUnavailable) as exc:
                logger.warning("call %s: stopping %s: %s", self.call_id, recording.name, exc)
        recording.end("finished")
        self._remember(recording)
        self._store(recording)
        logger.info("call %s: recording %s %s", self.call_id, recording.name, reason)
        return "stopped"

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
