"""Kazoo's ``voice`` and ``language`` → an eSpeak NG voice.

* ``language`` (a BCP 47 tag such as ``en-US``; Kazoo's default ``en-US``) is lower-cased and
  handed to eSpeak NG's own voice selection (``espeak_SetVoiceByProperties``), which picks its
  best voice for the tag or its primary subtag (``fr-CA`` → French, ``pt-BR`` → Brazilian
  Portuguese). A language eSpeak NG does not know (``xx-YY``) is refused by the synthesizer.
* ``voice`` ``female`` (Kazoo's default) → eSpeak NG variant ``f2``; ``male`` → ``m3``. Kazoo
  also accepts ``female/<language>``-style values from its cloud engines; only the part before a
  ``/`` is read, and anything but female or male is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import VoiceUnavailable

DEFAULT_LANGUAGE = "en-us"
DEFAULT_VOICE = "female"
VARIANTS = {"female": "f2", "male": "m3"}
_LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8})*$")


@dataclass(frozen=True)
class EspeakVoice:
    language: str  # lower-case BCP 47 tag given to eSpeak NG
    variant: str  # eSpeak NG voice variant (``f2``, ``m3``)
    voice: str  # the normalised Kazoo voice (``female``/``male``)


def espeak_voice(voice: str | None, language: str | None) -> EspeakVoice:
    kazoo_voice = (voice or DEFAULT_VOICE).split("/", 1)[0].strip().lower() or DEFAULT_VOICE
    if kazoo_voice not in VARIANTS:
        raise VoiceUnavailable(f"unknown voice {voice!r}: use female or male")
    tag = (language or DEFAULT_LANGUAGE).strip().lower().replace("_", "-") or DEFAULT_LANGUAGE
    if not _LANGUAGE_RE.match(tag):
        raise VoiceUnavailable(f"{language!r} is not a language tag such as en-US")
    return EspeakVoice(language=tag, variant=VARIANTS[kazoo_voice], voice=kazoo_voice)
