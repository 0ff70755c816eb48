"""Playing media to a call's legs and waiting until it has been heard (play, say, tts).

A module that plays something finishes when its media has: ``PlaybackFinished`` for each of
its playbacks (``done``: played to the end, stopped by ``break`` or a terminator; ``failed``:
Asterisk could not play it), or the leg it played to left. So a child runs after the media
("say goodbye, then hang up" lets the goodbye be heard). The wait is bounded by a generous cap
(``MEDIA_CAP``): a playback that never reports back lets the flow go on, with a warning.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ModuleFailed
from .feature import ModuleContext

logger = logging.getLogger(__name__)

MEDIA_CAP = 600.0  # the most a module waits for its media to finish (s)


@dataclass(frozen=True)
class Started:
    """Playbacks one module started: their ids, targets and final-state futures."""

    ids: tuple[str, ...]
    targets: tuple[str, ...]
    finished: tuple[asyncio.Future[str], ...]


async def play_to(ctx: ModuleContext, media: str, leg: str, lang: str | None = None) -> Started:
    """Play to the bridge (everyone) for ``both``, else to each chosen leg."""
    if leg == "both" and ctx.bridge_id is not None:
        bridge_id = ctx.bridge_id
        return await _start(ctx, media, lang, [("bridge", bridge_id)])
    roles = ctx.roles(leg)
    if not roles:
        raise ModuleFailed(f"no {leg} leg to play to")
    return await _start(ctx, media, lang, [(role, ctx.channels[role]) for role in roles])


async def _start(
    ctx: ModuleContext, media: str, lang: str | None, targets: Iterable[tuple[str, str]]
) -> Started:
    ids: list[str] = []
    names: list[str] = []
    futures: list[asyncio.Future[str]] = []
    for target, resource in targets:
        playback_id = f"mf-{uuid.uuid4().hex}"
        futures.append(ctx.playbacks.expect(playback_id, target))
        ids.append(playback_id)
        names.append(target)
        try:
            if target == "bridge":
                await ctx.gateway.play_on_bridge(resource, media, lang, playback_id)
            else:
                await ctx.gateway.play_on_channel(resource, media, lang, playback_id)
        except BaseException:
            ctx.playbacks.finished(playback_id, "failed")
            raise
    return Started(tuple(ids), tuple(names), tuple(futures))


async def until_played(
    ctx: ModuleContext, started: Started, what: str, cap: float | None = None
) -> list[str]:
    """Wait until every playback of ``started`` finished; their final states. A failed
    playback is a ``ModuleFailed`` naming ``what``."""
    cap = MEDIA_CAP if cap is None else cap
    try:
        async with asyncio.timeout(cap):
            states = [await future for future in started.finished]
    except TimeoutError:
        logger.warning("call %s: %s still playing after %.0f s; going on", ctx.call_id, what, cap)
        return []
    if "failed" in states:
        raise ModuleFailed(f"{what}: Asterisk could not play the media")
    return states


async def stop(ctx: ModuleContext, started: Started) -> None:
    """Stop the playbacks of ``started`` that are still on (``DELETE /playbacks/{id}``)."""
    for playback_id, future in zip(started.ids, started.finished, strict=True):
        if not future.done():
            await ctx.gateway.stop_playback(playback_id)
