"""Data schema of ``record_call`` (defaults written here once)."""

from __future__ import annotations

from ...metaflows.schema import Schema

RECORDING_FORMATS = ["wav", "wav16", "wav49", "gsm", "ulaw", "alaw", "sln", "sln16", "g722", "au"]
MAX_RECORDING_SECONDS = 10800

RECORD_CALL: Schema = {
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
ACTION = RECORD_CALL["properties"]["action"]["default"]
FORMAT = RECORD_CALL["properties"]["format"]["default"]
