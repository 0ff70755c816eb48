"""Media feature: ``play``, ``say``, ``break`` and ``audio_level``.

No per-call state of its own: the playbacks a flow starts go to the call's playback ledger
(``Call.playbacks``), which the core clears on PlaybackFinished.
"""

from __future__ import annotations

from ...calls.feature import BaseFeature, ModuleSpec
from . import modules as runners
from . import schemas


class MediaFeature(BaseFeature):
    name = "media"

    def __init__(self) -> None:
        self.modules = {
            "play": ModuleSpec(schemas.PLAY, runners.play),
            "say": ModuleSpec(schemas.SAY, runners.say, schemas.say_check),
            "break": ModuleSpec(schemas.BREAK, runners.break_),
            "audio_level": ModuleSpec(schemas.AUDIO_LEVEL, runners.audio_level),
        }
