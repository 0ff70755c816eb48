"""Data schemas of ``play``, ``say``, ``break`` and ``audio_level``, and their run-time defaults
(each written here once: Kazoo's defaults in the schemas, the modules' own as constants)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...metaflows.fragments import EMPTY, MEDIA, STRING, leg
from ...metaflows.schema import Schema

MUTE_LEVEL = -4

# ---- play --------------------------------------------------------------------------------------
# Kazoo: id, leg (default both). A missing id fails at run time, as in Kazoo. [+] id is a media id.
PLAY: Schema = {"type": "object", "properties": {"id": MEDIA, "leg": leg("both")}}

# ---- say ---------------------------------------------------------------------------------------
# Kazoo: gender, language, method, text, type (19 types). [+] text has no ',' or control
# characters (it becomes an ARI media URI) and at most 256 characters; a number type needs digits;
# leg is ours; the types digits and characters (accepted before Kazoo's list was) are kept.
SAY_TYPES = [
    "account_number",
    "currency",
    "current_date",
    "current_date_time",
    "current_time",
    "email_address",
    "ip_address",
    "items",
    "messages",
    "name_phonetic",
    "name_spelled",
    "number",
    "persons",
    "postal_address",
    "short_date_time",
    "telephone_extension",
    "telephone_number",
    "time_measurement",
    "url",
]
_DIGIT_TYPES = ("number", "digits", "telephone_number", "telephone_extension", "account_number")
SAY_TYPE = "number"  # run-time default of type
SAY_LEG = "both"  # run-time default of leg


def say_check(data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    text = data.get("text")
    kind = data.get("type")
    if isinstance(text, str) and text and kind in _DIGIT_TYPES and not text.isdigit():
        return [("text", "pattern", f"type {kind} needs a text of digits only")]
    return []


SAY: Schema = {
    "type": "object",
    "properties": {
        "gender": {"type": "string", "enum": ["feminine", "masculine", "neuter"]},
        "language": STRING,
        "method": {"type": "string", "enum": ["pronounced", "iterated", "counted"]},
        "text": {"type": "string", "maxLength": 256, "pattern": r"^[^,\x00-\x1f]*$"},
        "type": {"type": "string", "enum": [*SAY_TYPES, "digits", "characters"]},
        "leg": leg(None),
    },
}

BREAK: Schema = EMPTY

# ---- audio_level -------------------------------------------------------------------------------
# Kazoo: action, level (-4..4), mode. No Kazoo defaults (the module: start, 0, write). [+] leg.
AUDIO_LEVEL: Schema = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["start", "stop"]},
        "level": {"type": "integer", "minimum": MUTE_LEVEL, "maximum": 4},
        "mode": {"type": "string", "enum": ["read", "write"]},
        "leg": leg(None),
    },
}
LEVEL_ACTION = "start"  # run-time defaults of action, level, mode and leg
LEVEL = 0
LEVEL_MODE = "write"
LEVEL_LEG = "self"
