"""TEMPORARY: Kazoo modules whose data schema is known but whose runner is not written yet.

``tts``, ``intercept``, ``move``, ``hold_control``, ``sound_touch`` and ``pivot`` are Kazoo
modules: documents using them are accepted (validated with Kazoo's schemas), and at run time the
flow ends there as "unavailable" (``ModuleSpec.runner`` is None). Each entry below is
self-contained: when a feature folder brings a module's runner, it moves that module's schema
(and check) verbatim into its own folder and deletes the entry here (the registry refuses a
module in two features). When ``PENDING`` is empty, delete this folder and its line in
``features/__init__.py``.
"""

from __future__ import annotations

from ...calls.feature import BaseFeature, ModuleSpec
from ...metaflows.fragments import STRING, boolean

# ---- intercept ---------------------------------------------------------------------------------
# Kazoo's schema.
INTERCEPT = ModuleSpec(
    {
        "type": "object",
        "properties": {
            "auto_answer": boolean(False),
            "can_call_self": boolean(True),
            "target_id": STRING,
            "target_type": {"type": "string", "enum": ["device", "user", "number"]},
            "unbridged_only": boolean(True),
        },
    },
    None,
)

# ---- move --------------------------------------------------------------------------------------
# Kazoo's schema.
MOVE = ModuleSpec(
    {
        "type": "object",
        "properties": {
            "auto_answer": boolean(False),
            "can_call_self": boolean(True),
            "device_id": STRING,
            "dial_strategy": {"type": "string", "default": "simultaneous"},
            "owner_id": STRING,
        },
    },
    None,
)

PENDING: dict[str, ModuleSpec] = {
    "intercept": INTERCEPT,
    "move": MOVE,
}


class PendingFeature(BaseFeature):
    """Schema-only modules (no runner yet): valid in documents, "unavailable" when run."""

    name = "pending"

    def __init__(self) -> None:
        self.modules = dict(PENDING)
