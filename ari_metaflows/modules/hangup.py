"""``hangup``: hangs up the presser's leg (Kazoo)."""

from __future__ import annotations

from .base import ModuleContext


async def run(ctx: ModuleContext) -> str | None:
    channel = ctx.channels.get(ctx.presser)
    if channel is not None:
        await ctx.gateway.hangup(channel)
    return None
