"""Data schema of ``transfer`` and its run-time defaults (each written here once).

The schema keeps exactly Kazoo's defaults (``captures``, ``transfer_type``) so stored documents
match what Kazoo answers; ``takeback_dtmf`` and ``timeout`` have defaults only at run time.
"""

from __future__ import annotations

from ...metaflows.fragments import DTMF_SEQUENCE, EXTENSION, MOH_CLASS
from ...metaflows.schema import Schema

TAKEBACK_DTMF = "*1"  # run-time default of takeback_dtmf
TIMEOUT_MS = 20000  # run-time default of timeout: how long the target may ring

TRANSFER: Schema = {
    "type": "object",
    "properties": {
        "target": EXTENSION,
        "captures": {"type": "array", "items": {"type": "string"}, "default": ["no_match"]},
        "transfer_type": {
            "type": "string",
            "enum": ["blind", "attended"],
            "default": "blind",
        },
        "takeback_dtmf": DTMF_SEQUENCE,
        "moh": MOH_CLASS,
        "ringback": {"type": "string", "minLength": 1, "maxLength": 256},
        "timeout": {"type": "integer", "minimum": 1000, "maximum": 600000},
    },
}
TRANSFER_TYPE = TRANSFER["properties"]["transfer_type"]["default"]
