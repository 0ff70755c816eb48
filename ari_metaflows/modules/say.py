"""``say``: says a number, digits or characters with Asterisk's built-in media.

Kazoo's other say types (dates, currency, addresses, …) are valid in a document but Asterisk's
media cannot say them: the flow then fails with that reason (tts can say any text).
"""

from __future__ import annotations

from .base import ModuleContext, ModuleFailed
from .play import play_to

_SCHEMES = {
    "number": "number",
    "digits": "digits",
    "telephone_number": "digits",
    "telephone_extension": "digits",
    "account_number": "digits",
    "name_spelled": "characters",
    "characters": "characters",
}


async def run(ctx: ModuleContext) -> str | None:
    text = ctx.data.get("text")
    kind = str(ctx.data.get("type", "number"))
    scheme = _SCHEMES.get(kind)
    if not isinstance(text, str) or not text:
        raise ModuleFailed("say needs a text")
    if scheme is None:
        raise ModuleFailed(f"say type {kind} cannot be said with Asterisk's media; use tts")
    language = ctx.data.get("language")
    await play_to(
        ctx,
        f"{scheme}:{text}",
        str(ctx.data.get("leg", "both")),
        language if isinstance(language, str) else None,
    )
    return None
