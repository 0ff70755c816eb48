"""``resume``: reconnects a held party (a call not on hold is left as it is)."""

from __future__ import annotations

from .base import ModuleContext


async def run(ctx: ModuleContext) -> str | None:
    return await ctx.require_call().resume(ctx.presser)
