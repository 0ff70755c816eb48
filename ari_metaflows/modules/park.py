"""``park``: the other party waits in the account's parking lot; the presser hears the slot."""

from __future__ import annotations

from .base import ModuleContext, first_capture


async def run(ctx: ModuleContext) -> str | None:
    data = ctx.data
    slot = data.get("slot")
    if not isinstance(slot, str) or not slot:
        first = first_capture(data)
        slot = first if first is not None and first.isdigit() else None
    timeout = data.get("timeout", 120)
    return await ctx.require_call().park(
        ctx.presser, slot, float(timeout) if isinstance(timeout, int) else 120.0
    )
