"""Data schemas of ``intercept`` and ``move`` and their run-time defaults.

Kazoo's ``metaflows.intercept`` and ``metaflows.move`` schemas, field for field. Only Kazoo's
defaults are stored; the ring time is a run-time constant.
"""

from __future__ import annotations

from ...metaflows.fragments import STRING, boolean
from ...metaflows.schema import Schema

RING_SECONDS = 20.0  # how long the target devices ring before nothing changes (SPEC §6)

# ---- intercept ---------------------------------------------------------------------------------
# Kazoo's schema.
INTERCEPT: Schema = {
    "type": "object",
    "properties": {
        "auto_answer": boolean(False),
        "can_call_self": boolean(True),
        "target_id": STRING,
        "target_type": {"type": "string", "enum": ["device", "user", "number"]},
        "unbridged_only": boolean(True),
    },
}

# ---- move --------------------------------------------------------------------------------------
# Kazoo's schema.
MOVE: Schema = {
    "type": "object",
    "properties": {
        "auto_answer": boolean(False),
        "can_call_self": boolean(True),
        "device_id": STRING,
        "dial_strategy": {"type": "string", "default": "simultaneous"},
        "owner_id": STRING,
    },
}
