"""Recording feature: ``record_call`` — start, stop, toggle (the default), mask and unmask the
recording of a call, made through a snoop channel on the presser's side (recorder.py).

Per-call state: a ``CallRecorder`` in ``call.feature_state["recording"]``, made on first use.
Reacts to its snoop leg's departure and to RecordingFinished/RecordingFailed; stops when the
call's media leaves its bridge (a transfer, a park, sent on) and when the call ends.
"""

from __future__ import annotations

from typing import Any

from ...calls.feature import BaseFeature, CallHandle, ModuleContext, ModuleSpec
from ...errors import ModuleFailed
from ...recordings import Recording, RecordingJournal
from .recorder import CallRecorder, is_recorder, owner_of
from .schemas import ACTION, FORMAT, MAX_RECORDING_SECONDS, RECORD_CALL, record_call_check

NAME = "recording"
__all__ = [
    "MAX_RECORDING_SECONDS",
    "CallRecorder",
    "RecordingFeature",
    "current_recording",
    "owner_of",
    "recorder_of",
    "recording_masked",
]


def recorder_of(call: CallHandle) -> CallRecorder | None:
    """The call's recorder, if anything was ever recorded on it."""
    recorder: CallRecorder | None = call.feature_state.get(NAME)
    return recorder


class RecordingFeature(BaseFeature):
    name = NAME
    events = frozenset({"RecordingFinished", "RecordingFailed"})

    def __init__(self, journal: RecordingJournal | None) -> None:
        self.journal = journal
        self.modules = {"record_call": ModuleSpec(RECORD_CALL, self.record_call, record_call_check)}

    def _recorder(self, call: CallHandle) -> CallRecorder:
        recorder = recorder_of(call)
        if recorder is None:
            recorder = call.feature_state[NAME] = CallRecorder(call.id, self.journal)
        return recorder

    async def record_call(self, ctx: ModuleContext) -> str | None:
        action = str(ctx.data.get("action", ACTION))
        options = {k: ctx.data[k] for k in ("format", "time_limit", "label") if k in ctx.data}
        limit = options.get("time_limit")
        if not isinstance(limit, int) or limit <= 0:
            # Kazoo's schema allows any integer; not positive means "no limit of its own" (the cap).
            options.pop("time_limit", None)
        call = ctx.require_call()
        return await call.ask_async(lambda: self.record(call, ctx.presser, action, options))

    async def record(
        self, call: CallHandle, presser: str, action: str, options: dict[str, Any]
    ) -> str:
        """Runs in the call's own task (the recorder is call state)."""
        gateway = call.engine.gateway_or_raise()
        recorder = self._recorder(call)
        if action == "toggle":
            action = "stop" if recorder.recording else "start"
        if action == "start":
            leg = call.legs.get(presser)
            identity = leg.identity if leg else None
            if leg is None or identity is None:
                raise ModuleFailed("the presser has no account to own the recording")
            return await recorder.start(
                call,
                gateway,
                leg,
                identity,
                [leg.channel_id for leg in call.legs.values() if leg.party and not leg.gone],
                fmt=str(options.get("format", FORMAT)),
                time_limit=options.get("time_limit"),
                label=options.get("label"),
            )
        if action == "stop":
            return await recorder.stop(call, gateway)
        if action in ("mask", "unmask"):
            return await recorder.mask(gateway, action == "mask")
        raise ModuleFailed(f"unknown record_call action {action!r}")

    async def on_event(self, call: CallHandle, event: dict[str, Any]) -> None:
        recorder = recorder_of(call)
        if recorder is not None:
            recorder.on_event(event)

    async def on_leg_gone(self, call: CallHandle, role: str) -> bool:
        if not is_recorder(role):
            return False
        recorder = recorder_of(call)
        if recorder is not None:
            recorder.on_snoop_gone(call, role)
        else:
            call.drop_leg(role)
        return True

    async def on_leaving(self, call: CallHandle, reason: str) -> None:
        recorder = recorder_of(call)
        if recorder is not None:
            await recorder.stop(call, call.engine.gateway_or_raise(), reason)

    async def on_call_end(self, call: CallHandle) -> None:
        recorder = recorder_of(call)
        if recorder is not None:
            await recorder.stop(call, call.engine.gateway, "ended with the call")

    def describe(self, call: CallHandle, role: str) -> dict[str, Any]:
        recorder = recorder_of(call)
        current = recorder.current if recorder is not None else None
        return {
            "recording": current.id if current else None,
            "recording_masked": recorder.masked if recorder is not None else False,
        }


def current_recording(call: CallHandle) -> Recording | None:
    """What the call is recording now, if anything."""
    recorder = recorder_of(call)
    return recorder.current if recorder is not None else None


def recording_masked(call: CallHandle) -> bool:
    recorder = recorder_of(call)
    return recorder.masked if recorder is not None else False
