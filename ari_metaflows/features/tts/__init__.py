"""tts: speech from eSpeak NG, cached as 8 kHz WAV files that Asterisk fetches over HTTP.

The ``tts`` module synthesizes its text off the event loop (``engine.SpeechCache``: a child
process, once per (text, voice, language)), then plays ``sound:http://…/media/tts/<key>.wav``
(a signed, expiring URL to the service's own API listener, ``media.SpeechMedia``) to its
``leg``; it finishes when the speech has been heard (``calls.playing``), so children run
after. While it plays, a ``terminators`` key pressed by a leg that hears it stops it
(``DELETE /playbacks/{id}``); the key still reaches the metaflow collectors, as in Kazoo,
where the playback's terminators and the metaflow listener both see each digit. Failures are
``TtsError`` (a ``ModuleFailed``): the flow ends ``failed`` with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ...calls.feature import BaseFeature, CallHandle, ModuleContext, ModuleSpec
from ...calls.playing import play_to, stop, until_played
from ...errors import ModuleFailed
from ...metaflows.fragments import DTMF_KEYS, STRING, leg
from ...metaflows.schema import Schema
from .errors import EngineUnavailable
from .media import SpeechMedia

logger = logging.getLogger(__name__)

NAME = "tts"

# Kazoo's schema. [+] leg is one of self/peer/both (Kazoo: any string). ``engine`` is stored
# but not read: eSpeak NG serves every engine name (docs/decisions.md).
TTS: Schema = {
    "type": "object",
    "properties": {
        "engine": {"type": "string", "default": "flite"},
        "language": STRING,
        "leg": leg("self"),
        "terminators": {
            "type": "array",
            "items": {"type": "string", "enum": DTMF_KEYS},
            "default": list(DTMF_KEYS),
        },
        "text": STRING,
        "voice": {"type": "string", "default": "female"},
    },
}
TTS_LEG = "self"
TERMINATORS = tuple(DTMF_KEYS)


class TtsFeature(BaseFeature):
    """``speech`` is the service's SpeechMedia (None: no speech on this server, every tts
    flow fails saying so)."""

    name = NAME

    def __init__(self, speech: SpeechMedia | None = None) -> None:
        self.speech = speech
        self.modules = {"tts": ModuleSpec(TTS, self.run)}

    async def run(self, ctx: ModuleContext) -> str | None:
        speech = self.speech
        if speech is None:
            raise EngineUnavailable("speech is not configured on this server")
        media = await speech.for_node(ctx.data)  # off the loop: a child process, cached
        call = ctx.require_call()
        roles = ctx.roles(str(ctx.data.get("leg", TTS_LEG)))
        if not roles:
            raise ModuleFailed("tts: no such leg on the call")
        keys = ctx.data.get("terminators", TERMINATORS)
        terminators = frozenset(k for k in keys if isinstance(k, str)) if keys else frozenset()
        pressed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def terminator(_call: CallHandle, role: str, digit: str) -> bool:
            if role in roles and digit in terminators and not pressed.done():
                pressed.set_result(digit)
            return False  # the digit still goes to the collectors

        if terminators:
            await call.ask(lambda: call.add_digit_hook(terminator))
        try:
            started = await play_to(ctx, media, str(ctx.data.get("leg", TTS_LEG)))
            played = asyncio.ensure_future(until_played(ctx, started, "tts"))
            try:
                either: set[asyncio.Future[Any]] = {played, pressed}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                if not played.done():
                    logger.info("call %s: tts stopped by %s", ctx.call_id, pressed.result())
                    await stop(ctx, started)
                await played
            finally:
                played.cancel()
        finally:
            pressed.cancel()
            if terminators:
                await call.ask(lambda: call.remove_digit_hook(terminator))
        return None
