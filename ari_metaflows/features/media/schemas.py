"""Data schemas of ``play``, ``say``, ``break`` and ``audio_level`` (defaults written here once)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...metaflows.fragments import EMPTY, MEDIA, leg
from ...metaflows.schema import Schema

MUTE_LEVEL = -4
SAY_TYPES = ["number", "digits", "telephone_number", "name_spelled", "characters"]

PLAY: Schema = {
    "type": "object",
    "properties": {"id": MEDIA, "leg": leg("both")},
    "required": ["id"],
}
SAY: Schema = {
    "type": "object",
    "properties": {
        "text": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "pattern": r"^[A-Za-z0-9 #*+_.-]+$",
        },
        "type": {"type": "string", "enum": SAY_TYPES, "default": "number"},
        "language": {"type": "string", "pattern": r"^[a-z]{2,3}([_-][A-Za-z]{2,4})?$"},
        "leg": leg("both"),
    },
    "required": ["text"],
}
BREAK: Schema = EMPTY
AUDIO_LEVEL: Schema = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["start", "stop"], "default": "start"},
        "level": {"type": "integer", "minimum": MUTE_LEVEL, "maximum": 4},
        "mode": {"type": "string", "enum": ["read", "write"], "default": "write"},
        "leg": leg("self"),
    },
}


def say_check(data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    text = data.get("text")
    if (
        isinstance(text, str)
        and data.get("type") in ("number", "digits", "telephone_number")
        and not text.isdigit()
    ):
        return [("text", "pattern", f"type {data['type']} needs a text of digits only")]
    return []


def audio_level_check(data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    if data.get("action") == "start" and "level" not in data:
        return [("level", "required", "Field is required but missing")]
    return []
