"""Hold feature: ``hold`` (the other party hears music on hold, the presser silence) until
``unhold_key`` or a ``resume`` code; ``resume`` reconnects a held party.

Per-call state: ``Hold`` in ``call.feature_state["hold"]`` while held. While held, a digit
hook on the call turns the holder's unhold key into a ``resume`` (unless the holder is in the
middle of a code).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ...calls.feature import BaseFeature, CallHandle, ModuleContext, ModuleSpec
from ...errors import AriError, AriUnavailable, ModuleFailed
from ...metaflows.documents import Node
from ...metaflows.fragments import EMPTY, MOH_CLASS, STRING
from ...metaflows.schema import Schema

logger = logging.getLogger(__name__)

NAME = "hold"
# Kazoo: moh_aleg, moh_bleg, unhold_key (default "1"). [+] unhold_key is one DTMF key (or empty:
# the default); moh (a music-on-hold class) is ours.
HOLD: Schema = {
    "type": "object",
    "properties": {
        "moh_aleg": STRING,
        "moh_bleg": STRING,
        "unhold_key": {"type": "string", "pattern": r"^[0-9*#]?$", "default": "1"},
        "moh": MOH_CLASS,
    },
}
RESUME: Schema = EMPTY
UNHOLD_KEY = HOLD["properties"]["unhold_key"]["default"]
_RESUME = Node("resume", {})


@dataclass(frozen=True)
class Hold:
    holder: str  # the role that pressed hold (out of the bridge, hearing silence)
    unhold_key: str


def held(call: CallHandle) -> Hold | None:
    state: Hold | None = call.feature_state.get(NAME)
    return state


async def hold_module(ctx: ModuleContext) -> str | None:
    moh = ctx.data.get("moh")
    unhold_key = ctx.data.get("unhold_key") or UNHOLD_KEY
    return await hold(
        ctx.require_call(), ctx.presser, moh if isinstance(moh, str) else None, str(unhold_key)
    )


async def resume_module(ctx: ModuleContext) -> str | None:
    return await resume(ctx.require_call(), ctx.presser)


async def hold(call: CallHandle, presser: str, moh_class: str | None, unhold_key: str) -> str:
    """The other party hears music on hold; the presser leaves the bridge (silence)."""

    def claim() -> tuple[str, str] | None:
        if held(call) is not None:
            return None
        holder, _ = call.require_connected(presser)
        assert call.bridge_id is not None
        call.feature_state[NAME] = Hold(presser, unhold_key)
        call.add_digit_hook(_unhold_digit)
        return holder.channel_id, call.bridge_id

    claimed = await call.ask(claim)
    if claimed is None:
        return "already_held"
    holder_channel, bridge_id = claimed
    gateway = call.engine.gateway_or_raise()
    try:
        await gateway.remove_from_bridge(bridge_id, holder_channel)
        await gateway.start_bridge_moh(bridge_id, moh_class)
    except (AriError, AriUnavailable) as exc:
        await call.ask(lambda: _unclaim(call))
        await call.safely(call.join_bridge(bridge_id, [presser]))
        raise ModuleFailed(f"cannot hold: {exc}") from exc
    logger.info("call %s: %s put the call on hold", call.id, presser)
    return "held"


def _unclaim(call: CallHandle) -> Hold | None:
    state: Hold | None = call.feature_state.pop(NAME, None)
    call.remove_digit_hook(_unhold_digit)
    return state


async def resume(call: CallHandle, presser: str) -> str:
    state = await call.ask(lambda: _unclaim(call))
    if state is None:
        return "not_held"
    gateway = call.engine.gateway_or_raise()
    holder = call.legs[state.holder]
    if call.bridge_id is not None:
        await call.safely(gateway.stop_bridge_moh(call.bridge_id))
        if not holder.gone:
            await call.safely(call.join_bridge(call.bridge_id, [state.holder]))
    logger.info("call %s: resumed by %s", call.id, presser)
    return "resumed"


def _unhold_digit(call: CallHandle, role: str, digit: str) -> bool:
    """The holder's unhold key resumes the call, unless the holder is in the middle of a code."""
    state = held(call)
    if state is None or role != state.holder or digit != state.unhold_key:
        return False
    collector = call.collectors.get(role)
    if collector is not None and collector.armed:
        return False
    logger.info("call %s: %s pressed the unhold key", call.id, role)
    audit = call.audit_event(role, role, "dtmf", "running")
    if audit is not None:
        audit.collected = digit
        audit.matched_key = digit
        audit.match_kind = "unhold_key"
    call.launch(_RESUME, role, {"dtmf_leg": role}, audit)
    return True


class HoldFeature(BaseFeature):
    name = NAME

    def __init__(self) -> None:
        self.modules = {
            "hold": ModuleSpec(HOLD, hold_module),
            "resume": ModuleSpec(RESUME, resume_module),
        }

    def busy(self, call: CallHandle) -> str | None:
        return "the call is on hold; resume it first" if held(call) is not None else None

    def describe(self, call: CallHandle, role: str) -> dict[str, Any]:
        return {"held": held(call) is not None}
