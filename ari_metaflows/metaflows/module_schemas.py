"""Data schemas of the metaflow modules this server runs (SPEC §6).

Defaults listed here are written into stored documents. ``transfer`` keeps exactly Kazoo's
schema defaults (``captures``, ``transfer_type``) so its documents match what Kazoo answers; its
other defaults (``takeback_dtmf`` ``*1``, ``timeout`` 20000 ms) apply at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .schema import Schema

LEG_VALUES = ["self", "peer", "both"]
RECORDING_FORMATS = ["wav", "wav16", "wav49", "gsm", "ulaw", "alaw", "sln", "sln16", "g722", "au"]
MAX_RECORDING_SECONDS = 10800

_EXTENSION: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": r"^[A-Za-z0-9*#+_-]+$",
}
_CONTEXT: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 80,
    "pattern": r"^[A-Za-z0-9_.+-]+$",
}
_MOH_CLASS: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 80,
    "pattern": r"^[A-Za-z0-9_-]+$",
}
_DTMF_SEQUENCE: Schema = {"type": "string", "pattern": r"^[0-9*#]{1,8}$"}
_MEDIA: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 256,
    "pattern": r"^[A-Za-z0-9_./:@#*+-]+$",
}
_EMPTY: Schema = {"type": "object", "properties": {}}


def _leg(default: str) -> Schema:
    return {"type": "string", "enum": LEG_VALUES, "default": default}


# Cross-field rules a property schema cannot express: (field, keyword, message) per problem.
ExtraCheck = Callable[[Mapping[str, Any]], list[tuple[str, str, str]]]


def _say_check(data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    text = data.get("text")
    if (
        isinstance(text, str)
        and data.get("type") in ("number", "digits", "telephone_number")
        and not text.isdigit()
    ):
        return [("text", "pattern", f"type {data['type']} needs a text of digits only")]
    return []


def _audio_level_check(data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    if data.get("action") == "start" and "level" not in data:
        return [("level", "required", "Field is required but missing")]
    return []


@dataclass(frozen=True)
class ModuleSpec:
    schema: Schema
    extra_check: ExtraCheck | None = None


MODULE_SPECS: dict[str, ModuleSpec] = {
    "transfer": ModuleSpec(
        {
            "type": "object",
            "properties": {
                "target": _EXTENSION,
                "captures": {"type": "array", "items": {"type": "string"}, "default": ["no_match"]},
                "transfer_type": {
                    "type": "string",
                    "enum": ["blind", "attended"],
                    "default": "blind",
                },
                "takeback_dtmf": _DTMF_SEQUENCE,
                "moh": _MOH_CLASS,
                "ringback": {"type": "string", "minLength": 1, "maxLength": 256},
                "timeout": {"type": "integer", "minimum": 1000, "maximum": 600000},
            },
        }
    ),
    "record_call": ModuleSpec(
        {
            "type": "object",
            "properties": {
                "action": {
                    "type": "string",
                    "enum": ["start", "stop", "toggle", "mask", "unmask"],
                    "default": "toggle",
                },
                "format": {"type": "string", "enum": RECORDING_FORMATS, "default": "wav"},
                "time_limit": {"type": "integer", "minimum": 1, "maximum": MAX_RECORDING_SECONDS},
                "label": {"type": "string", "maxLength": 128},
            },
        }
    ),
    "hold": ModuleSpec(
        {
            "type": "object",
            "properties": {
                "moh": _MOH_CLASS,
                "unhold_key": {"type": "string", "pattern": r"^[0-9*#]$", "default": "1"},
            },
        }
    ),
    "resume": ModuleSpec(_EMPTY),
    "hangup": ModuleSpec(_EMPTY),
    "break": ModuleSpec(_EMPTY),
    "play": ModuleSpec(
        {
            "type": "object",
            "properties": {"id": _MEDIA, "leg": _leg("both")},
            "required": ["id"],
        }
    ),
    "say": ModuleSpec(
        {
            "type": "object",
            "properties": {
                "text": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 128,
                    "pattern": r"^[A-Za-z0-9 #*+_.-]+$",
                },
                "type": {
                    "type": "string",
                    "enum": [
                        "number",
                        "digits",
                        "telephone_number",
                        "name_spelled",
                        "characters",
                    ],
                    "default": "number",
                },
                "language": {"type": "string", "pattern": r"^[a-z]{2,3}([_-][A-Za-z]{2,4})?$"},
                "leg": _leg("both"),
            },
            "required": ["text"],
        },
        _say_check,
    ),
    "audio_level": ModuleSpec(
        {
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": ["start", "stop"], "default": "start"},
                "level": {"type": "integer", "minimum": -4, "maximum": 4},
                "mode": {"type": "string", "enum": ["read", "write"], "default": "write"},
                "leg": _leg("self"),
            },
        },
        _audio_level_check,
    ),
    "callflow": ModuleSpec(
        {
            "type": "object",
            "properties": {
                "context": _CONTEXT,
                "extension": _EXTENSION,
                "priority": {"type": "integer", "minimum": 1, "maximum": 99999, "default": 1},
                "leg": _leg("peer"),
            },
        }
    ),
    "park": ModuleSpec(
        {
            "type": "object",
            "properties": {
                "slot": {"type": "string", "pattern": r"^[0-9]{1,8}$"},
                "timeout": {"type": "integer", "minimum": 1, "maximum": 3600, "default": 120},
            },
        }
    ),
}

# Kazoo modules that need parts this server lacks (a speech engine, a device directory, ...).
UNSUPPORTED_MODULES = frozenset(
    {"tts", "intercept", "move", "pivot", "relate", "sound_touch", "hold_control"}
)
