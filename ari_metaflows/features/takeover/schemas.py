"""Data schemas of ``intercept`` and ``move`` (Kazoo's ``metaflows.intercept`` and
``metaflows.move``, field for field) and their run-time defaults.

Moved here from the devices branch's ``metaflows/module_schemas.py`` (the Kazoo-conformant
entries), so the feature folder is the one place they live.
"""

from __future__ import annotations

from ...metaflows.schema import Schema

RING_SECONDS = 20.0  # how long the target devices ring before nothing changes (SPEC §6)
TARGET_TYPES = ["device", "user", "number"]

_STRING: Schema = {"type": "string"}


def _boolean(default: bool) -> Schema:
    return {"type": "boolean", "default": default}


# Kazoo's schema.
INTERCEPT: Schema = {
    "type": "object",
    "properties": {
        "auto_answer": _boolean(False),
        "can_call_self": _boolean(True),
        "target_id": _STRING,
        "target_type": {"type": "string", "enum": TARGET_TYPES},
        "unbridged_only": _boolean(True),
    },
}

# Kazoo's schema.
MOVE: Schema = {
    "type": "object",
    "properties": {
        "auto_answer": _boolean(False),
        "can_call_self": _boolean(True),
        "device_id": _STRING,
        "dial_strategy": {"type": "string", "default": "simultaneous"},
        "owner_id": _STRING,
    },
}
