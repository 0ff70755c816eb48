"""Metaflow modules, one file each, registered here (the only place)."""

from __future__ import annotations

from . import (
    audio_level,
    break_,
    callflow,
    hangup,
    hold,
    park,
    play,
    record_call,
    resume,
    say,
    transfer,
)
from .base import ModuleContext, ModuleFailed, ModuleRunner, Playbacks, run_flow

REGISTRY: dict[str, ModuleRunner] = {
    "hangup": hangup.run,
    "break": break_.run,
    "play": play.run,
    "say": say.run,
    "transfer": transfer.run,
    "record_call": record_call.run,
    "hold": hold.run,
    "resume": resume.run,
    "audio_level": audio_level.run,
    "callflow": callflow.run,
    "park": park.run,
}

__all__ = ["REGISTRY", "ModuleContext", "ModuleFailed", "ModuleRunner", "Playbacks", "run_flow"]
