"""``callflow``: sends a leg (default the other party) on into the dialplan.

Kazoo ran one of its callflows; the Asterisk equivalent is a dialplan location. ``context``
defaults to the transfer context, ``extension`` to the first capture, else the collected digits.
"""

from __future__ import annotations

from .base import ModuleContext, ModuleFailed, first_capture


async def run(ctx: ModuleContext) -> str | None:
    data = ctx.data
    extension = data.get("extension")
    if not isinstance(extension, str) or not extension:
        extension = first_capture(data) or data.get("collected")
    if not isinstance(extension, str) or not extension:
        raise ModuleFailed("callflow has no extension: no data.extension, capture or digits")
    given = data.get("context")
    context = given if isinstance(given, str) and given else _default_context(ctx)
    priority = data.get("priority", 1)
    roles = ctx.roles(str(data.get("leg", "peer")))
    if not roles:
        raise ModuleFailed("no such leg on the call")
    return await ctx.require_call().send_on(
        ctx.presser, roles, context, extension, priority if isinstance(priority, int) else 1
    )


def _default_context(ctx: ModuleContext) -> str:
    context = getattr(ctx.settings, "transfer_context", None)
    return context if isinstance(context, str) else "default"
