"""Schema pieces several features' module schemas share (SPEC §6)."""

from __future__ import annotations

from .schema import Schema

LEG_VALUES = ["self", "peer", "both"]

EXTENSION: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": r"^[A-Za-z0-9*#+_-]+$",
}
CONTEXT: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 80,
    "pattern": r"^[A-Za-z0-9_.+-]+$",
}
MOH_CLASS: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 80,
    "pattern": r"^[A-Za-z0-9_-]+$",
}
DTMF_SEQUENCE: Schema = {"type": "string", "pattern": r"^[0-9*#]{1,8}$"}
MEDIA: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 256,
    "pattern": r"^[A-Za-z0-9_./:@#*+-]+$",
}
EMPTY: Schema = {"type": "object", "properties": {}}


def leg(default: str) -> Schema:
    return {"type": "string", "enum": LEG_VALUES, "default": default}
