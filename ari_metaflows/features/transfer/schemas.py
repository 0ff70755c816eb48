"""Data schema of ``transfer`` and its run-time defaults (each written here once).

The schema keeps exactly Kazoo's defaults (``captures``, ``transfer_type``) so stored documents
match what Kazoo answers; ``takeback_dtmf`` and ``timeout`` have defaults only at run time.
"""

from __future__ import annotations

from ...metaflows.fragments import DTMF_SEQUENCE, EXTENSION, MOH_CLASS, STRING
from ...metaflows.schema import Schema

TAKEBACK_DTMF = "*1"  # run-time default of takeback_dtmf
TIMEOUT_MS = 20000  # run-time default of timeout (absent or not positive): how long to ring
MIN_TIMEOUT_MS = 1000  # a timeout is clamped to 1 s … 10 min
MAX_TIMEOUT_MS = 600_000

# Kazoo: captures, leg, target, timeout, transfer_type. [+] target is a dialplan extension;
# takeback_dtmf, moh and ringback are ours. timeout (ms) is Kazoo's any integer; the module clamps
# it to 1 s … 10 min.
TRANSFER: Schema = {
    "type": "object",
    "properties": {
        "captures": {"type": "array", "items": {"type": "string"}, "default": ["no_match"]},
        "leg": STRING,
        "target": EXTENSION,
        "timeout": {"type": "integer"},
        "transfer_type": {"type": "string", "enum": ["attended", "blind"], "default": "blind"},
        "takeback_dtmf": DTMF_SEQUENCE,
        "moh": MOH_CLASS,
        "ringback": {"type": "string", "minLength": 1, "maxLength": 256},
    },
}
TRANSFER_TYPE = TRANSFER["properties"]["transfer_type"]["default"]
