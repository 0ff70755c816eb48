"""Data schema of ``record_call`` and its run-time defaults (each written here once)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...metaflows.fragments import STRING, boolean
from ...metaflows.schema import Schema

# [+] What Asterisk's MixMonitor can write; Kazoo lists mp3 and wav (Asterisk has no mp3 writer).
RECORDING_FORMATS = ["wav", "wav16", "wav49", "gsm", "ulaw", "alaw", "sln", "sln16", "g722", "au"]
MAX_RECORDING_SECONDS = 10800
FORMAT = "wav"  # run-time default of format (Kazoo's schema has none, so none is stored)

# Kazoo's fields, all checked; url/method/media_name/record_* are stored but unused here.
# [+] format: what Asterisk can write (mp3 is refused, Asterisk formats beyond wav accepted).
# time_limit is Kazoo's any integer; the recording caps it at MAX_RECORDING_SECONDS.


def record_call_check(data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    if data.get("format") == "mp3":
        return [("format", "enum", "Asterisk cannot write mp3 recordings; use wav")]
    return []


RECORD_CALL: Schema = {
    "type": "object",
    "properties": {
        "action": {
            "type": "string",
            "enum": ["mask", "unmask", "start", "stop", "toggle"],
            "default": "toggle",
        },
        "format": {"type": "string", "enum": ["mp3", *RECORDING_FORMATS]},
        "label": STRING,
        "media_name": STRING,
        "method": {"type": "string", "enum": ["put", "post"]},
        "origin": STRING,
        "record_min_sec": {"type": "integer"},
        "record_on_answer": boolean(False),
        "record_on_bridge": boolean(False),
        "record_sample_rate": {"type": "integer"},
        "time_limit": {"type": "integer"},
        "url": STRING,
    },
}
ACTION = RECORD_CALL["properties"]["action"]["default"]
