"""``play``: plays media to the chosen legs — the bridge (everyone) for ``both``."""

from __future__ import annotations

from .base import ModuleContext, ModuleFailed

_SCHEMES = ("sound:", "recording:", "tone:", "digits:", "number:", "characters:")


def media_uri(media_id: str) -> str:
    """A bare sound name becomes ``sound:<name>``."""
    return media_id if media_id.startswith(_SCHEMES) else f"sound:{media_id}"


async def play_to(ctx: ModuleContext, media: str, leg: str, lang: str | None = None) -> None:
    if leg == "both" and ctx.bridge_id is not None:
        playback = await ctx.gateway.play_on_bridge(ctx.bridge_id, media, lang)
        ctx.playbacks.started(playback, "bridge")
        return
    roles = ctx.roles(leg)
    if not roles:
        raise ModuleFailed(f"no {leg} leg to play to")
    for role in roles:
        playback = await ctx.gateway.play_on_channel(ctx.channels[role], media, lang)
        ctx.playbacks.started(playback, role)


async def run(ctx: ModuleContext) -> str | None:
    media_id = ctx.data.get("id")
    if not isinstance(media_id, str) or not media_id:
        raise ModuleFailed("play needs an id")
    await play_to(ctx, media_uri(media_id), str(ctx.data.get("leg", "both")))
    return None
