"""``hold``: the other party hears music on hold until ``unhold_key`` or a ``resume`` code."""

from __future__ import annotations

from .base import ModuleContext


async def run(ctx: ModuleContext) -> str | None:
    moh = ctx.data.get("moh")
    unhold_key = ctx.data.get("unhold_key") or "1"
    return await ctx.require_call().hold(
        ctx.presser, moh if isinstance(moh, str) else None, str(unhold_key)
    )
