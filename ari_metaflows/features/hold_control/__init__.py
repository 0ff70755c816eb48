"""hold_control: SIP-level hold of the presser's own leg (``POST/DELETE /channels/{id}/hold``).

ARI's hold indicates hold to the channel's device (Asterisk's ``ast_indicate(HOLD)``): with
``moh_passthrough=yes`` on the PJSIP endpoint, Asterisk re-INVITEs the phone on hold; without,
the leg hears music on hold from Asterisk. The other party is not touched (``hold`` is the
module that puts the *other* party on music on hold). Asterisk sends no event for a hold it
indicates (ChannelHold/ChannelUnhold report holds a device asks for), so the feature keeps the
state per leg itself: ``HoldControl`` in ``call.feature_state["hold_control"]``, shown as
``sip_hold`` in the channels listing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ...calls.feature import BaseFeature, CallHandle, ModuleContext, ModuleSpec
from ...errors import AriError, AriUnavailable, ModuleFailed
from ...metaflows.schema import Schema

logger = logging.getLogger(__name__)

NAME = "hold_control"

# Kazoo's schema.
HOLD_CONTROL: Schema = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["hold", "unhold", "toggle"], "default": "toggle"}
    },
}
ACTION = "toggle"


@dataclass
class HoldControl:
    held: set[str] = field(default_factory=set)  # channel ids this feature put on hold


def state_of(call: CallHandle) -> HoldControl:
    state: HoldControl | None = call.feature_state.get(NAME)
    if state is None:
        state = call.feature_state[NAME] = HoldControl()
    return state


class HoldControlFeature(BaseFeature):
    name = NAME

    def __init__(self) -> None:
        self.modules = {"hold_control": ModuleSpec(HOLD_CONTROL, self.run)}

    async def run(self, ctx: ModuleContext) -> str | None:
        call = ctx.require_call()
        channel = ctx.channels.get(ctx.presser)
        if channel is None:
            raise ModuleFailed("hold_control: the presser has left the call")
        action = str(ctx.data.get("action", ACTION))

        def decide() -> tuple[bool, bool]:
            """(hold wanted, was held); the state changes now, in the call's task."""
            held = state_of(call).held
            was = channel in held
            want = not was if action == "toggle" else action == "hold"
            if want:
                held.add(channel)
            else:
                held.discard(channel)
            return want, was

        want, was = await call.ask(decide)
        try:
            await ctx.gateway.hold(channel, want)
        except (AriError, AriUnavailable) as exc:

            def undo() -> None:
                held = state_of(call).held
                if was:
                    held.add(channel)
                else:
                    held.discard(channel)

            await call.ask(undo)
            verb = "hold" if want else "unhold"
            raise ModuleFailed(f"hold_control: cannot {verb}: {exc}") from exc
        logger.info("call %s: %s %s", ctx.call_id, ctx.presser, "on hold" if want else "off hold")
        return "held" if want else "unheld"

    async def on_leg_gone(self, call: CallHandle, role: str) -> bool:
        leg = call.legs.get(role)
        state: HoldControl | None = call.feature_state.get(NAME)
        if leg is not None and state is not None:
            state.held.discard(leg.channel_id)
        return False

    def describe(self, call: CallHandle, role: str) -> dict[str, Any]:
        state: HoldControl | None = call.feature_state.get(NAME)
        leg = call.legs.get(role)
        return {"sip_hold": bool(state and leg and leg.channel_id in state.held)}
