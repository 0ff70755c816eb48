"""``audio_level``: louder or softer (Asterisk's ``VOLUME()``), mute at -4; ``stop`` restores.

``mode`` ``write`` changes what the leg hears (``VOLUME(TX)``, mute direction ``out``), ``read``
what it sends (``VOLUME(RX)``, direction ``in``). Levels map to Asterisk gains: 1…4 multiply by
2…5, -1…-3 divide by 2…4, 0 is unchanged.
"""

from __future__ import annotations

from ..ari.gateway import AriError, AriUnavailable
from .base import ModuleContext, ModuleFailed

MUTE_LEVEL = -4


def gain_of(level: int) -> int:
    if level > 0:
        return level + 1
    if level < 0:
        return level - 1
    return 0


async def run(ctx: ModuleContext) -> str | None:
    data = ctx.data
    mode = str(data.get("mode", "write"))
    function = "VOLUME(TX)" if mode == "write" else "VOLUME(RX)"
    direction = "out" if mode == "write" else "in"
    roles = ctx.roles(str(data.get("leg", "self")))
    if not roles:
        raise ModuleFailed("no such leg on the call")
    action = str(data.get("action", "start"))
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
