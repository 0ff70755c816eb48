"""``play``, ``say``, ``break`` and ``audio_level``: media on the call's legs and bridge.

``play`` and ``say`` finish when their media has (``calls.playing``), so children run after
it; ``break`` stops what plays on the presser's leg and on the bridge, which ends those waits.

``audio_level``: louder or softer (Asterisk's ``VOLUME()``), mute at -4; ``stop`` restores.
``mode`` ``write`` changes what the leg hears (``VOLUME(TX)``, mute direction ``out``), ``read``
what it sends (``VOLUME(RX)``, direction ``in``). Levels map to Asterisk gains: 1…4 multiply by
2…5, -1…-3 divide by 2…4, 0 is unchanged.
"""

from __future__ import annotations

from ...calls.feature import ModuleContext, media_uri
from ...calls.playing import play_to, until_played
from ...errors import AriError, AriUnavailable, ModuleFailed
from .schemas import (
    LEVEL,
    LEVEL_ACTION,
    LEVEL_LEG,
    LEVEL_MODE,
    MUTE_LEVEL,
    PLAY,
    SAY_LEG,
    SAY_TYPE,
)

_SAY_SCHEMES = {
    "number": "number",
    "digits": "digits",
    "telephone_number": "digits",
    "telephone_extension": "digits",
    "account_number": "digits",
    "name_spelled": "characters",
    "characters": "characters",
}
_PLAY_LEG = PLAY["properties"]["leg"]["default"]


async def play(ctx: ModuleContext) -> str | None:
    media_id = ctx.data.get("id")
    if not isinstance(media_id, str) or not media_id:
        raise ModuleFailed("play needs an id")
    media = media_uri(media_id)
    started = await play_to(ctx, media, str(ctx.data.get("leg", _PLAY_LEG)))
    await until_played(ctx, started, f"play {media}")
    return None


async def say(ctx: ModuleContext) -> str | None:
    """Says a number, digits or characters with Asterisk's built-in media.

    Kazoo's other say types (dates, currency, addresses, …) are valid in a document but
    Asterisk's media cannot say them: the flow then fails with that reason (tts can say any
    text).
    """
    text = ctx.data.get("text")
    kind = str(ctx.data.get("type", SAY_TYPE))
    scheme = _SAY_SCHEMES.get(kind)
    if not isinstance(text, str) or not text:
        raise ModuleFailed("say needs a text")
    if scheme is None:
        raise ModuleFailed(f"say type {kind} cannot be said with Asterisk's media; use tts")
    language = ctx.data.get("language")
    media = f"{scheme}:{text}"
    started = await play_to(
        ctx,
        media,
        str(ctx.data.get("leg", SAY_LEG)),
        language if isinstance(language, str) else None,
    )
    await until_played(ctx, started, f"say {media}")
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
    mode = str(data.get("mode", LEVEL_MODE))
    function = "VOLUME(TX)" if mode == "write" else "VOLUME(RX)"
    direction = "out" if mode == "write" else "in"
    roles = ctx.roles(str(data.get("leg", LEVEL_LEG)))
    if not roles:
        raise ModuleFailed("no such leg on the call")
    action = str(data.get("action", LEVEL_ACTION))
    level = data.get("level", LEVEL)
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
                    channel, function, str(gain_of(level if isinstance(level, int) else LEVEL))
                )
    except (AriError, AriUnavailable) as exc:
        raise ModuleFailed(f"audio_level: {exc}") from exc
    return None
