"""``play``, ``say``, ``break`` and ``audio_level``: media on the call's legs and bridge.

``audio_level``: louder or softer (Asterisk's ``VOLUME()``), mute at -4; ``stop`` restores.
``mode`` ``write`` changes what the leg hears (``VOLUME(TX)``, mute direction ``out``), ``read``
what it sends (``VOLUME(RX)``, direction ``in``). Levels map to Asterisk gains: 1…4 multiply by
2…5, -1…-3 divide by 2…4, 0 is unchanged.
"""

from __future__ import annotations

from ...calls.feature import ModuleContext, media_uri
from ...errors import AriError, AriUnavailable, ModuleFailed
from .schemas import AUDIO_LEVEL, MUTE_LEVEL, PLAY, SAY

_SAY_SCHEMES = {
    "number": "number",
    "digits": "digits",
    "telephone_number": "digits",
    "name_spelled": "characters",
    "characters": "characters",
}
_PLAY_LEG = PLAY["properties"]["leg"]["default"]
_SAY_LEG = SAY["properties"]["leg"]["default"]
_SAY_TYPE = SAY["properties"]["type"]["default"]
_LEVEL_ACTION = AUDIO_LEVEL["properties"]["action"]["default"]
_LEVEL_MODE = AUDIO_LEVEL["properties"]["mode"]["default"]
_LEVEL_LEG = AUDIO_LEVEL["properties"]["leg"]["default"]


async def play_to(ctx: ModuleContext, media: str, leg: str, lang: str | None = None) -> None:
    """Play to the bridge (everyone) for ``both``, else to each chosen leg."""
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


async def play(ctx: ModuleContext) -> str | None:
    media_id = ctx.data.get("id")
    if not isinstance(media_id, str) or not media_id:
        raise ModuleFailed("play needs an id")
    await play_to(ctx, media_uri(media_id), str(ctx.data.get("leg", _PLAY_LEG)))
    return None


async def say(ctx: ModuleContext) -> str | None:
    """Says a number, digits or characters with Asterisk's built-in media."""
    text = ctx.data.get("text")
    scheme = _SAY_SCHEMES.get(str(ctx.data.get("type", _SAY_TYPE)))
    if not isinstance(text, str) or not text or scheme is None:
        raise ModuleFailed("say needs a text and a known type")
    language = ctx.data.get("language")
    await play_to(
        ctx,
        f"{scheme}:{text}",
        str(ctx.data.get("leg", _SAY_LEG)),
        language if isinstance(language, str) else None,
    )
    return None


async def break_(ctx: ModuleContext) -> str | None:
    """Stops what is playing on the presser's leg (Kazoo), and on the call's bridge."""
    for playback_id in ctx.playbacks.on({ctx.presser, "bridge"}):
        await ctx.gateway.stop_playback(playback_id)
        ctx.playbacks.finished(playback_id)
    return None


def gain_of(level: int) -> int:
    if level > 0:
        return level + 1
    if level < 0:
        return level - 1
    return 0


async def audio_level(ctx: ModuleContext) -> str | None:
    data = ctx.data
    mode = str(data.get("mode", _LEVEL_MODE))
    function = "VOLUME(TX)" if mode == "write" else "VOLUME(RX)"
    direction = "out" if mode == "write" else "in"
    roles = ctx.roles(str(data.get("leg", _LEVEL_LEG)))
    if not roles:
        raise ModuleFailed("no such leg on the call")
    action = str(data.get("action", _LEVEL_ACTION))
    level = data.get("level", 0)
    try:
        for role in roles:
            channel = ctx.channels[role]
            if action == "stop":
                await ctx.gateway.set_variable(channel, function, "0")
                await ctx.gateway.mute(channel, direction, False)
            elif level == MUTE_LEVEL:
                await ctx.gateway.mute(channel, direction, True)
            else:
                await ctx.gateway.mute(channel, direction, False)
                await ctx.gateway.set_variable(
                    channel, function, str(gain_of(level if isinstance(level, int) else 0))
                )
    except (AriError, AriUnavailable) as exc:
        raise ModuleFailed(f"audio_level: {exc}") from exc
    return None
