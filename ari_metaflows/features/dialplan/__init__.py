"""Dialplan feature: ``callflow`` (send legs on into the dialplan) and ``hangup``.

Kazoo's ``callflow`` ran one of its callflows; the Asterisk equivalent is a dialplan location.
``context`` defaults to the transfer context, ``extension`` to the first capture, else the
collected digits. No per-call state.
"""

from __future__ import annotations

import logging
from functools import partial

from ...calls.feature import (
    EXTENSION_RE,
    BaseFeature,
    CallHandle,
    ModuleContext,
    ModuleSpec,
    first_capture,
)
from ...calls.leg import Phase
from ...errors import AriError, AriUnavailable, ModuleFailed
from ...metaflows.fragments import CALLFLOW_ACTION_REF, CONTEXT, EMPTY, EXTENSION, STRING, leg
from ...metaflows.schema import Schema

logger = logging.getLogger(__name__)

# Kazoo: captures, collected, flow (a callflows.action node), id. Kazoo runs a callflow; the
# Asterisk equivalent is a dialplan location: [+] context, extension, priority and leg are ours.
CALLFLOW: Schema = {
    "type": "object",
    "properties": {
        "captures": STRING,
        "collected": STRING,
        "flow": {"$ref": CALLFLOW_ACTION_REF},
        "id": STRING,
        "context": CONTEXT,
        "extension": EXTENSION,
        "priority": {"type": "integer", "minimum": 1, "maximum": 99999},
        "leg": leg(None),
    },
}
HANGUP: Schema = EMPTY
_PRIORITY = 1  # run-time defaults of priority and leg (not Kazoo fields, so not stored)
_LEG = "peer"


async def hangup(ctx: ModuleContext) -> str | None:
    """Hangs up the presser's leg (Kazoo)."""
    channel = ctx.channels.get(ctx.presser)
    if channel is not None:
        await ctx.gateway.hangup(channel)
    return None


async def callflow(ctx: ModuleContext) -> str | None:
    data = ctx.data
    extension = data.get("extension")
    if not isinstance(extension, str) or not extension:
        extension = first_capture(data) or data.get("collected")
    if not isinstance(extension, str) or not extension:
        raise ModuleFailed("callflow has no extension: no data.extension, capture or digits")
    given = data.get("context")
    context = given if isinstance(given, str) and given else _default_context(ctx)
    priority = data.get("priority", _PRIORITY)
    roles = ctx.roles(str(data.get("leg", _LEG)))
    if not roles:
        raise ModuleFailed("no such leg on the call")
    return await send_on(
        ctx.require_call(),
        roles,
        context,
        extension,
        priority if isinstance(priority, int) else _PRIORITY,
    )


def _default_context(ctx: ModuleContext) -> str:
    context = getattr(ctx.settings, "transfer_context", None)
    return context if isinstance(context, str) else "default"


async def send_on(
    call: CallHandle, roles: list[str], context: str, extension: str, priority: int
) -> str:
    """Legs continue in the dialplan; the app's part of the call ends (legs not sent on are
    hung up, as after a blind transfer)."""
    if not EXTENSION_RE.match(extension):
        raise ModuleFailed(f"{extension!r} is not a dialable extension")
    if call.interceptors or call.phase is Phase.PARKED:
        raise ModuleFailed("the call is being transferred or parked")
    gateway = call.engine.gateway_or_raise()
    await call.leaving("stopped: the call left the app")
    for role in roles:
        leg_ = call.legs[role]
        await call.ask(partial(call.release, role, True))
        try:
            await gateway.continue_in_dialplan(
                leg_.channel_id, context=context, extension=extension, priority=priority
            )
        except (AriError, AriUnavailable) as exc:
            await call.ask(partial(call.release, role, False))
            raise ModuleFailed(f"cannot send {role} to {extension}@{context}: {exc}") from exc
    logger.info("call %s: %s sent on to %s@%s,%d", call.id, roles, extension, context, priority)
    return "sent"


class DialplanFeature(BaseFeature):
    name = "dialplan"

    def __init__(self) -> None:
        self.modules = {
            "callflow": ModuleSpec(CALLFLOW, callflow),
            "hangup": ModuleSpec(HANGUP, hangup),
        }
