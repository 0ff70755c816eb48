"""``say``: says a number, digits or characters with Asterisk's built-in media."""

from __future__ import annotations

from .base import ModuleContext, ModuleFailed
from .play import play_to

_SCHEMES = {
    "number": "number",
    "digits": "digits",
    "telephone_number": "digits",
    "name_spelled": "characters",
    "characters": "characters",
}


async def run(ctx: ModuleContext) -> str | None:
    text = ctx.data.get("text")
    scheme = _SCHEMES.get(str(ctx.data.get("type", "number")))
    if not isinstance(text, str) or not text or scheme is None:
        raise ModuleFailed("say needs a text and a known type")
    language = ctx.data.get("language")
    await play_to(
        ctx,
        f"{scheme}:{text}",
        str(ctx.data.get("leg", "both")),
        language if isinstance(language, str) else None,
    )
    return None
