"""sound_touch: pitch shift of the presser's leg through Asterisk's ``PITCH_SHIFT()``.

Kazoo drives FreeSWITCH's soundtouch (pitch, rate, tempo); Asterisk's ``func_pitchshift`` only
shifts pitch, by a factor above 0 and at most 4 (``PITCH_SHIFT(rx|tx|both)=<factor>``, set with
``POST /channels/{id}/variable``). The factor is ``pitch x 2^adjust_in_octaves x
2^(adjust_in_semitones / 12)``; ``sending_leg`` false shifts what the presser sends (``rx``: the
others hear a changed voice), true what the presser hears (``tx``). What Asterisk cannot do is
refused when the document is saved: ``rate`` or ``tempo`` other than 1.0, ``hook_dtmf`` (live
DTMF control of the effect), a factor above 4. ``stop`` resets both directions to 1.0 (no
effect). The factor set is kept per leg and shown as ``pitch_shift`` in the channels listing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ...calls.feature import BaseFeature, CallHandle, ModuleContext, ModuleSpec
from ...errors import AriError, AriUnavailable, ModuleFailed
from ...metaflows.fragments import boolean
from ...metaflows.schema import Schema

logger = logging.getLogger(__name__)

NAME = "sound_touch"
MAX_FACTOR = 4.0  # func_pitchshift.c refuses an amount <= 0 or > 4

# Kazoo's schema; what Asterisk cannot do is refused by ``sound_touch_check``.
SOUND_TOUCH: Schema = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["start", "stop"]},
        "adjust_in_octaves": {"type": "number", "minimum": -1.0, "maximum": 1.0, "default": 0},
        "adjust_in_semitones": {
            "type": "number",
            "minimum": -14.0,
            "maximum": 14.0,
            "default": 0,
        },
        "hook_dtmf": boolean(False),
        "pitch": {"type": "number", "minimum": 1.0, "default": 1.0},
        "rate": {"type": "number", "minimum": 1.0, "default": 1.0},
        "sending_leg": boolean(False),
        "tempo": {"type": "number", "minimum": 1.0, "default": 1.0},
    },
}
ACTION = "start"  # Kazoo gives none; starting is what a code without one means


def _number(data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
    )


def factor(data: Mapping[str, Any]) -> float:
    """The pitch factor Asterisk is given."""
    return (
        _number(data, "pitch", 1.0)
        * 2 ** _number(data, "adjust_in_octaves", 0.0)
        * 2 ** (_number(data, "adjust_in_semitones", 0.0) / 12)
    )


def sound_touch_check(data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    problems = [
        (key, "enum", f"{key} other than 1.0 is not supported: Asterisk can shift pitch only")
        for key in ("rate", "tempo")
        if data.get(key, 1.0) != 1.0
    ]
    if data.get("hook_dtmf") is True:
        problems.append(
            ("hook_dtmf", "enum", "hook_dtmf is not supported: Asterisk has no DTMF control")
        )
    if data.get("action", ACTION) == "start" and factor(data) > MAX_FACTOR:
        problems.append(
            (
                "pitch",
                "maximum",
                f"pitch x 2^octaves x 2^(semitones/12) is {factor(data):.2f}; "
                f"Asterisk shifts pitch by at most {MAX_FACTOR:g}",
            )
        )
    return problems


def shifts(call: CallHandle) -> dict[str, dict[str, float]]:
    """Channel id → direction → factor set (made when first needed)."""
    state: dict[str, dict[str, float]] | None = call.feature_state.get(NAME)
    if state is None:
        state = call.feature_state[NAME] = {}
    return state


class SoundTouchFeature(BaseFeature):
    name = NAME

    def __init__(self) -> None:
        self.modules = {"sound_touch": ModuleSpec(SOUND_TOUCH, self.run, sound_touch_check)}

    async def run(self, ctx: ModuleContext) -> str | None:
        call = ctx.require_call()
        channel = ctx.channels.get(ctx.presser)
        if channel is None:
            raise ModuleFailed("sound_touch: the presser has left the call")
        if str(ctx.data.get("action", ACTION)) == "stop":
            direction, amount = "both", 1.0
        else:
            direction = "tx" if ctx.data.get("sending_leg") is True else "rx"
            amount = factor(ctx.data)
        try:
            await ctx.gateway.set_variable(channel, f"PITCH_SHIFT({direction})", f"{amount:.4f}")
        except (AriError, AriUnavailable) as exc:
            raise ModuleFailed(f"sound_touch: Asterisk refused PITCH_SHIFT: {exc}") from exc

        def note() -> None:
            if direction == "both":
                shifts(call).pop(channel, None)
            else:
                shifts(call).setdefault(channel, {})[direction] = round(amount, 4)

        await call.ask(note)
        logger.info("call %s: %s pitch %s x %.4f", ctx.call_id, ctx.presser, direction, amount)
        return None

    def describe(self, call: CallHandle, role: str) -> dict[str, Any]:
        state: dict[str, dict[str, float]] | None = call.feature_state.get(NAME)
        leg = call.legs.get(role)
        found = state.get(leg.channel_id) if state and leg else None
        return {"pitch_shift": dict(found) if found else None}
