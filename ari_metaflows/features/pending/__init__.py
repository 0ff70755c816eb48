"""TEMPORARY: Kazoo modules whose data schema is known but whose runner is not written yet.

``tts``, ``hold_control``, ``sound_touch`` and ``pivot`` are Kazoo
modules: documents using them are accepted (validated with Kazoo's schemas), and at run time the
flow ends there as "unavailable" (``ModuleSpec.runner`` is None). Each entry below is
self-contained: when a feature folder brings a module's runner, it moves that module's schema
(and check) verbatim into its own folder and deletes the entry here (the registry refuses a
module in two features). When ``PENDING`` is empty, delete this folder and its line in
``features/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...calls.feature import BaseFeature, ModuleSpec
from ...metaflows.fragments import DTMF_KEYS, HTTP_URL, STRING, boolean, leg

# ---- tts ---------------------------------------------------------------------------------------
# Kazoo's schema. [+] leg is one of self/peer/both (Kazoo: any string).
TTS = ModuleSpec(
    {
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
    },
    None,
)

# ---- hold_control ------------------------------------------------------------------------------
# Kazoo's schema.
HOLD_CONTROL = ModuleSpec(
    {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["hold", "unhold", "toggle"], "default": "toggle"}
        },
    },
    None,
)

# ---- sound_touch -------------------------------------------------------------------------------
# Kazoo's schema. [+] rate and tempo other than 1.0 are refused: Asterisk's PITCH_SHIFT() changes
# pitch only.


def _sound_touch_check(data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (key, "enum", f"{key} other than 1.0 is not supported: Asterisk can shift pitch only")
        for key in ("rate", "tempo")
        if data.get(key, 1.0) != 1.0
    ]


SOUND_TOUCH = ModuleSpec(
    {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["start", "stop"]},
            "adjust_in_octaves": {"type": "number", "minimum": -1.0, "maximum": 1.0, "default": 0},
            "adjust_in_semitones": {
                "type": "number",
                "minimum": -14.0,
                "maximum": 14.0,
                "default": 0,
            },
            "hook_dtmf": boolean(False),
            "pitch": {"type": "number", "minimum": 1.0, "default": 1.0},
            "rate": {"type": "number", "minimum": 1.0, "default": 1.0},
            "sending_leg": boolean(False),
            "tempo": {"type": "number", "minimum": 1.0, "default": 1.0},
        },
    },
    None,
    _sound_touch_check,
)

# ---- pivot -------------------------------------------------------------------------------------
# Kazoo's schema. [+] req_format twiml is refused: the answer must be a metaflow node (JSON).


def _pivot_check(data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    if data.get("req_format") == "twiml":
        return [("req_format", "enum", "twiml is not supported: answer a metaflow node (kazoo)")]
    return []


PIVOT = ModuleSpec(
    {
        "type": "object",
        "properties": {
            "cdr_url": HTTP_URL,
            "debug": boolean(False),
            "method": {
                "type": "string",
                "enum": ["get", "post", "GET", "POST"],
                "default": "get",
            },
            "req_format": {"type": "string", "enum": ["kazoo", "twiml"], "default": "kazoo"},
            "voice_url": HTTP_URL,
        },
        "required": ["voice_url"],
    },
    None,
    _pivot_check,
)


PENDING: dict[str, ModuleSpec] = {
    "tts": TTS,
    "hold_control": HOLD_CONTROL,
    "sound_touch": SOUND_TOUCH,
    "pivot": PIVOT,
}


class PendingFeature(BaseFeature):
    """Schema-only modules (no runner yet): valid in documents, "unavailable" when run."""

    name = "pending"

    def __init__(self) -> None:
        self.modules = dict(PENDING)
