"""``record_call``: start, stop, toggle (the default), mask and unmask the call's recording."""

from __future__ import annotations

from .base import ModuleContext


async def run(ctx: ModuleContext) -> str | None:
    action = str(ctx.data.get("action", "toggle"))
    options = {k: ctx.data[k] for k in ("format", "time_limit", "label") if k in ctx.data}
    limit = options.get("time_limit")
    if not isinstance(limit, int) or limit <= 0:
        # Kazoo's schema allows any integer; not positive means "no limit of its own" (the cap).
        options.pop("time_limit", None)
    return await ctx.require_call().record(ctx.presser, action, options)
