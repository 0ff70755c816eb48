"""``break``: stops what is playing on the presser's leg (Kazoo), and on the call's bridge."""

from __future__ import annotations

from .base import ModuleContext


async def run(ctx: ModuleContext) -> str | None:
    for playback_id in ctx.playbacks.on({ctx.presser, "bridge"}):
        await ctx.gateway.stop_playback(playback_id)
        ctx.playbacks.finished(playback_id)
    return None
