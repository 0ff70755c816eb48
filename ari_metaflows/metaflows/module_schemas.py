"""Data schemas of the metaflow modules (SPEC §6), one entry per module.

Kazoo's ``metaflows.<module>`` schemas are the contract: every Kazoo-defined field is checked as
Kazoo checks it, and only Kazoo's defaults are written into stored documents (a module's own
run-time defaults, e.g. ``transfer.timeout`` 20000 ms, apply when it runs). Where a schema here
is stricter or adds fields, the entry says so with ``[+]``; every such difference is listed with
its reason in docs/decisions.md ("Kazoo schemas: where we differ") and in
tests/test_kazoo_schemas.py, which holds these schemas against Kazoo's own.

Each entry is self-contained data so it can move verbatim into its feature folder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .schema import REFS, Schema

LEG_VALUES = ["self", "peer", "both"]
# [+] What Asterisk's MixMonitor can write; Kazoo lists mp3 and wav (Asterisk has no mp3 writer).
RECORDING_FORMATS = ["wav", "wav16", "wav49", "gsm", "ulaw", "alaw", "sln", "sln16", "g722", "au"]
MAX_RECORDING_SECONDS = 10800
DTMF_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"]

# [+] A dialplan extension (dialled as Local/<ext>@<context>): no '@', '/', ',' that would reach
# another context or channel. Empty means "none" (the module then uses its capture or fails).
_EXTENSION: Schema = {"type": "string", "maxLength": 64, "pattern": r"^[A-Za-z0-9*#+_-]*$"}
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
# [+] An ARI media id: ARI's media parameter is a comma-separated list, so no ',' (or spaces).
_MEDIA: Schema = {"type": "string", "maxLength": 256, "pattern": r"^[A-Za-z0-9_./:@#*+-]*$"}
_EMPTY: Schema = {"type": "object", "properties": {}}
_STRING: Schema = {"type": "string"}
_HTTP_URL: Schema = {"type": "string", "pattern": "^https?://"}


def _leg(default: str | None) -> Schema:
    schema: dict[str, Any] = {"type": "string", "enum": LEG_VALUES}
    if default is not None:
        schema["default"] = default
    return schema


def _boolean(default: bool) -> Schema:
    return {"type": "boolean", "default": default}


# Kazoo's callflows.action: the node shape of a callflow, which callflow's ``flow`` refers to.
CALLFLOW_ACTION_REF = "#/components/schemas/CallflowAction"
REFS[CALLFLOW_ACTION_REF] = {
    "type": "object",
    "properties": {
        "children": {
            "type": "object",
            "patternProperties": {".+": {"$ref": CALLFLOW_ACTION_REF}},
        },
        "data": {"type": "object", "default": {}},
        "module": {"type": "string", "minLength": 1, "maxLength": 64},
    },
    "required": ["data", "module"],
}


# Cross-field rules a property schema cannot express: (field, keyword, message) per problem.
ExtraCheck = Callable[[Mapping[str, Any]], list[tuple[str, str, str]]]


@dataclass(frozen=True)
class ModuleSpec:
    schema: Schema
    extra_check: ExtraCheck | None = None


# ---- transfer ----------------------------------------------------------------------------------
# Kazoo: captures, leg, target, timeout, transfer_type. [+] target is a dialplan extension;
# takeback_dtmf, moh and ringback are ours. timeout (ms) is Kazoo's any integer; the module clamps
# it to 1 s … 10 min.
TRANSFER = ModuleSpec(
    {
        "type": "object",
        "properties": {
            "captures": {"type": "array", "items": {"type": "string"}, "default": ["no_match"]},
            "leg": _STRING,
            "target": _EXTENSION,
            "timeout": {"type": "integer"},
            "transfer_type": {"type": "string", "enum": ["attended", "blind"], "default": "blind"},
            "takeback_dtmf": _DTMF_SEQUENCE,
            "moh": _MOH_CLASS,
            "ringback": {"type": "string", "minLength": 1, "maxLength": 256},
        },
    }
)

# ---- record_call -------------------------------------------------------------------------------
# Kazoo's fields, all checked; url/method/media_name/record_* are stored but unused here.
# [+] format: what Asterisk can write (mp3 is refused, Asterisk formats beyond wav accepted).
# time_limit is Kazoo's any integer; the recording caps it at MAX_RECORDING_SECONDS.


def _record_call_check(data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    if data.get("format") == "mp3":
        return [("format", "enum", "Asterisk cannot write mp3 recordings; use wav")]
    return []


RECORD_CALL = ModuleSpec(
    {
        "type": "object",
        "properties": {
            "action": {
                "type": "string",
                "enum": ["mask", "unmask", "start", "stop", "toggle"],
                "default": "toggle",
            },
            "format": {"type": "string", "enum": ["mp3", *RECORDING_FORMATS]},
            "label": _STRING,
            "media_name": _STRING,
            "method": {"type": "string", "enum": ["put", "post"]},
            "origin": _STRING,
            "record_min_sec": {"type": "integer"},
            "record_on_answer": _boolean(False),
            "record_on_bridge": _boolean(False),
            "record_sample_rate": {"type": "integer"},
            "time_limit": {"type": "integer"},
            "url": _STRING,
        },
    },
    _record_call_check,
)

# ---- hold --------------------------------------------------------------------------------------
# Kazoo: moh_aleg, moh_bleg, unhold_key (default "1"). [+] unhold_key is one DTMF key (or empty:
# the default); moh (a music-on-hold class) is ours.
HOLD = ModuleSpec(
    {
        "type": "object",
        "properties": {
            "moh_aleg": _STRING,
            "moh_bleg": _STRING,
            "unhold_key": {"type": "string", "pattern": r"^[0-9*#]?$", "default": "1"},
            "moh": _MOH_CLASS,
        },
    }
)

RESUME = ModuleSpec(_EMPTY)
HANGUP = ModuleSpec(_EMPTY)
BREAK = ModuleSpec(_EMPTY)

# ---- play --------------------------------------------------------------------------------------
# Kazoo: id, leg (default both). A missing id fails at run time, as in Kazoo. [+] id is a media id.
PLAY = ModuleSpec(
    {"type": "object", "properties": {"id": _MEDIA, "leg": _leg("both")}},
)

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


def _say_check(data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    text = data.get("text")
    kind = data.get("type")
    if isinstance(text, str) and text and kind in _DIGIT_TYPES and not text.isdigit():
        return [("text", "pattern", f"type {kind} needs a text of digits only")]
    return []


SAY = ModuleSpec(
    {
        "type": "object",
        "properties": {
            "gender": {"type": "string", "enum": ["feminine", "masculine", "neuter"]},
            "language": _STRING,
            "method": {"type": "string", "enum": ["pronounced", "iterated", "counted"]},
            "text": {"type": "string", "maxLength": 256, "pattern": r"^[^,\x00-\x1f]*$"},
            "type": {"type": "string", "enum": [*SAY_TYPES, "digits", "characters"]},
            "leg": _leg(None),
        },
    },
    _say_check,
)

# ---- audio_level -------------------------------------------------------------------------------
# Kazoo: action, level (-4..4), mode. No Kazoo defaults (the module: start, 0, write). [+] leg.
AUDIO_LEVEL = ModuleSpec(
    {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["start", "stop"]},
            "level": {"type": "integer", "minimum": -4, "maximum": 4},
            "mode": {"type": "string", "enum": ["read", "write"]},
            "leg": _leg(None),
        },
    }
)

# ---- callflow ----------------------------------------------------------------------------------
# Kazoo: captures, collected, flow (a callflows.action node), id. Kazoo runs a callflow; the
# Asterisk equivalent is a dialplan location: [+] context, extension, priority and leg are ours.
CALLFLOW = ModuleSpec(
    {
        "type": "object",
        "properties": {
            "captures": _STRING,
            "collected": _STRING,
            "flow": {"$ref": CALLFLOW_ACTION_REF},
            "id": _STRING,
            "context": _CONTEXT,
            "extension": _EXTENSION,
            "priority": {"type": "integer", "minimum": 1, "maximum": 99999},
            "leg": _leg(None),
        },
    }
)

# ---- park --------------------------------------------------------------------------------------
# [+] Not a Kazoo module (Kazoo has no park schema).
PARK = ModuleSpec(
    {
        "type": "object",
        "properties": {
            "slot": {"type": "string", "pattern": r"^[0-9]{1,8}$"},
            "timeout": {"type": "integer", "minimum": 1, "maximum": 3600, "default": 120},
        },
    }
)

# ---- tts ---------------------------------------------------------------------------------------
# Kazoo's schema. [+] leg is one of self/peer/both (Kazoo: any string).
TTS = ModuleSpec(
    {
        "type": "object",
        "properties": {
            "engine": {"type": "string", "default": "flite"},
            "language": _STRING,
            "leg": _leg("self"),
            "terminators": {
                "type": "array",
                "items": {"type": "string", "enum": DTMF_KEYS},
                "default": list(DTMF_KEYS),
            },
            "text": _STRING,
            "voice": {"type": "string", "default": "female"},
        },
    }
)

# ---- intercept ---------------------------------------------------------------------------------
# Kazoo's schema.
INTERCEPT = ModuleSpec(
    {
        "type": "object",
        "properties": {
            "auto_answer": _boolean(False),
            "can_call_self": _boolean(True),
            "target_id": _STRING,
            "target_type": {"type": "string", "enum": ["device", "user", "number"]},
            "unbridged_only": _boolean(True),
        },
    }
)

# ---- move --------------------------------------------------------------------------------------
# Kazoo's schema.
MOVE = ModuleSpec(
    {
        "type": "object",
        "properties": {
            "auto_answer": _boolean(False),
            "can_call_self": _boolean(True),
            "device_id": _STRING,
            "dial_strategy": {"type": "string", "default": "simultaneous"},
            "owner_id": _STRING,
        },
    }
)

# ---- hold_control ------------------------------------------------------------------------------
# Kazoo's schema.
HOLD_CONTROL = ModuleSpec(
    {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["hold", "unhold", "toggle"], "default": "toggle"}
        },
    }
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
            "hook_dtmf": _boolean(False),
            "pitch": {"type": "number", "minimum": 1.0, "default": 1.0},
            "rate": {"type": "number", "minimum": 1.0, "default": 1.0},
            "sending_leg": _boolean(False),
            "tempo": {"type": "number", "minimum": 1.0, "default": 1.0},
        },
    },
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
            "cdr_url": _HTTP_URL,
            "debug": _boolean(False),
            "method": {
                "type": "string",
                "enum": ["get", "post", "GET", "POST"],
                "default": "get",
            },
            "req_format": {"type": "string", "enum": ["kazoo", "twiml"], "default": "kazoo"},
            "voice_url": _HTTP_URL,
        },
        "required": ["voice_url"],
    },
    _pivot_check,
)


MODULE_SPECS: dict[str, ModuleSpec] = {
    "transfer": TRANSFER,
    "record_call": RECORD_CALL,
    "hold": HOLD,
    "resume": RESUME,
    "hangup": HANGUP,
    "break": BREAK,
    "play": PLAY,
    "say": SAY,
    "audio_level": AUDIO_LEVEL,
    "callflow": CALLFLOW,
    "park": PARK,
    "tts": TTS,
    "intercept": INTERCEPT,
    "move": MOVE,
    "hold_control": HOLD_CONTROL,
    "sound_touch": SOUND_TOUCH,
    "pivot": PIVOT,
}

# [+] Kazoo modules this server refuses: relate needs conferences, which this server has none of.
UNSUPPORTED_MODULES = frozenset({"relate"})
