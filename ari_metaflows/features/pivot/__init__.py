"""pivot: the rest of a flow comes from an HTTP server (Kazoo's ``voice_url``).

The ``pivot`` module asks ``voice_url`` (``fetch.fetch_pivot``: GET or POST with the call's
data — call id, legs, owners, collected digits, captures) for one metaflow node, validated like
a stored one, and runs it as the rest of the flow: the pivot node's own children never run
(in Kazoo, the pivot takes over the call from the callflow that reached it). The fetched node
runs with the same presser and injected context, and may pivot again, at most ``MAX_DEPTH``
pivots deep. A slow, unreachable or wrong answer, or a fetched node that fails, ends the flow
``failed`` with the reason in the log (``fetch.PivotError``, a ``ModuleFailed``).

A pivot with ``cdr_url`` has the call's record posted there when the call ends (``cdr.py``:
off the call's critical path, bounded, never blocking the call's end).
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from ...calls.feature import (
    END_OF_FLOW,
    BaseFeature,
    CallHandle,
    ModuleContext,
    ModuleSpec,
    run_flow,
)
from ...errors import AriError, AriUnavailable, ModuleFailed
from ...metaflows.fragments import HTTP_URL, boolean
from ...metaflows.schema import Schema
from .cdr import STATE, CdrNotes, CdrSender, ari_time, summary
from .fetch import DEFAULT_TIMEOUT, PivotCallData, PivotTooDeep, fetch_pivot

logger = logging.getLogger(__name__)

NAME = "pivot"
MAX_DEPTH = 5  # pivots answering pivots, in one flow

# Kazoo's schema. [+] req_format twiml is refused: the answer must be a metaflow node (JSON).
PIVOT: Schema = {
    "type": "object",
    "properties": {
        "cdr_url": HTTP_URL,
        "debug": boolean(False),
        "method": {
            "type": "string",
            "enum": ["get", "post", "GET", "POST"],
            "default": "get",
        },
        "req_format": {"type": "string", "enum": ["kazoo", "twiml"], "default": "kazoo"},
        "voice_url": HTTP_URL,
    },
    "required": ["voice_url"],
}
METHOD = "get"


def pivot_check(data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    if data.get("req_format") == "twiml":
        return [("req_format", "enum", "twiml is not supported: answer a metaflow node (kazoo)")]
    return []


# How many pivots deep the running flow is (each flow runs in its own context copy).
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("pivot_depth", default=0)


def call_data(ctx: ModuleContext) -> PivotCallData:
    """What the request tells voice_url: the call, its legs and owners, the digits."""
    call = ctx.require_call()
    owners: list[str] = []
    account: str | None = None
    presser = call.legs.get(ctx.presser)
    if presser is not None and presser.identity is not None:
        account = presser.identity.account_id
    for role in ctx.channels:
        leg = call.legs.get(role)
        identity = leg.identity if leg is not None else None
        if identity is not None and identity.user_id and identity.user_id not in owners:
            owners.append(identity.user_id)
    captures = ctx.data.get("captures")
    collected = ctx.data.get("collected")
    return PivotCallData(
        call_id=ctx.call_id,
        channel_id=ctx.channels.get(ctx.presser, ""),
        legs=dict(ctx.channels),
        account_id=account,
        owner_ids=owners,
        caller_id_name=presser.name if presser is not None and presser.name else None,
        digits=collected if isinstance(collected, str) else "",
        captures=[c for c in captures if isinstance(c, str)] if isinstance(captures, list) else [],
    )


class PivotFeature(BaseFeature):
    name = NAME

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, cdr: CdrSender | None = None) -> None:
        self.timeout = timeout
        self.cdr = cdr or CdrSender()
        self.modules = {"pivot": ModuleSpec(PIVOT, self.run, pivot_check)}

    async def close(self) -> None:
        """At shutdown: the CDR posts still under way get a moment, then are cancelled."""
        await self.cdr.close()

    async def run(self, ctx: ModuleContext) -> str | None:
        depth = _DEPTH.get()
        if depth >= MAX_DEPTH:
            raise PivotTooDeep(f"pivot: more than {MAX_DEPTH} pivots in one flow")
        url = str(ctx.data["voice_url"])
        cdr_url = ctx.data.get("cdr_url")
        if isinstance(cdr_url, str) and cdr_url:
            await self._note_cdr_url(ctx, cdr_url)
        async with aiohttp.ClientSession() as session:
            answer = await fetch_pivot(
                session,
                url,
                str(ctx.data.get("method", METHOD)),
                call_data(ctx),
                self.timeout,
            )
        node = answer.to_node()
        if ctx.data.get("debug"):
            logger.info("call %s: pivot %s answered %s", ctx.call_id, url, answer.node)
        logger.info("call %s: pivot %s → %s", ctx.call_id, url, node.module)
        runners = ctx.require_call().engine.features.runners
        token = _DEPTH.set(depth + 1)
        try:
            steps = await run_flow(node, ctx, runners)
        finally:
            _DEPTH.reset(token)
        failed = [(module, outcome) for module, outcome in steps if outcome != "ok"]
        if failed:
            module, outcome = failed[-1]
            raise ModuleFailed(f"pivot {url}: the answered {module} ended {outcome}")
        return END_OF_FLOW

    # -- the call's record (cdr_url) -------------------------------------------------------------

    async def _note_cdr_url(self, ctx: ModuleContext, url: str) -> None:
        call = ctx.require_call()
        notes: CdrNotes | None = call.feature_state.get(STATE)
        if notes is None or notes.start is None:
            start = await self._start_of(ctx)

            def note() -> None:
                mine: CdrNotes = call.feature_state.setdefault(STATE, CdrNotes())
                if mine.start is None:
                    mine.start = start
                mine.add(url)

            await call.ask(note)
        else:
            await call.ask(lambda: notes.add(url))

    async def _start_of(self, ctx: ModuleContext) -> float:
        """When the call began: its caller channel's creation (now, if Asterisk cannot say)."""
        caller = ctx.channels.get("caller")
        if caller is not None:
            try:
                return ari_time((await ctx.gateway.channel(caller)).get("creationtime")) or (
                    time.time()
                )
            except (AriError, AriUnavailable) as exc:
                logger.info("call %s: no start time for the CDR: %s", ctx.call_id, exc)
        return time.time()

    async def on_leg_gone(self, call: CallHandle, role: str) -> bool:
        notes: CdrNotes | None = call.feature_state.get(STATE)
        leg = call.legs.get(role)
        if notes is not None and notes.hangup_by is None and leg is not None and leg.party:
            notes.hangup_by = role
        return False

    async def on_call_end(self, call: CallHandle) -> None:
        """Start the CDR posts; the call's end does not wait for them."""
        notes: CdrNotes | None = call.feature_state.pop(STATE, None)
        if notes is None or not notes.urls:
            return
        legs = {role: leg.channel_id for role, leg in call.legs.items() if leg.party}
        owners: list[str] = []
        account: str | None = None
        for leg in call.legs.values():
            identity = leg.identity
            if identity is None or not leg.party:
                continue
            account = account or identity.account_id
            if identity.user_id and identity.user_id not in owners:
                owners.append(identity.user_id)
        body = summary(call.id, account, legs, owners, notes, time.time())
        for url in notes.urls:
            self.cdr.send(call.id, url, body)
