"""Metaflow modules, one file each, registered here (the only place)."""

from __future__ import annotations

from . import break_, hangup, play, record_call, say, transfer
from .base import ModuleContext, ModuleFailed, ModuleRunner, Playbacks, run_flow

REGISTRY: dict[str, ModuleRunner] = {
    "hangup": hangup.run,
    "break": break_.run,
    "play": play.run,
    "say": say.run,
    "transfer": transfer.run,
    "record_call": record_call.run,
}

__all__ = ["REGISTRY", "ModuleContext", "ModuleFailed", "ModuleRunner", "Playbacks", "run_flow"]
