"""Schema pieces several features' module schemas share (SPEC §6).

Kazoo's ``metaflows.<module>`` schemas are the contract: every Kazoo-defined field is checked as
Kazoo checks it, and only Kazoo's defaults are written into stored documents (a module's own
run-time defaults, e.g. ``transfer.timeout`` 20000 ms, are constants next to its schema). Where
a schema is stricter or adds fields, its entry says so with ``[+]``; every such difference is
listed with its reason in docs/decisions.md ("Kazoo schemas: where we differ") and in
tests/metaflows/test_kazoo_schemas.py, which holds the schemas against Kazoo's own.
"""

from __future__ import annotations

from typing import Any

from .schema import REFS, Schema

LEG_VALUES = ["self", "peer", "both"]
DTMF_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"]

# [+] A dialplan extension (dialled as Local/<ext>@<context>): no '@', '/', ',' that would reach
# another context or channel. Empty means "none" (the module then uses its capture or fails).
EXTENSION: Schema = {"type": "string", "maxLength": 64, "pattern": r"^[A-Za-z0-9*#+_-]*$"}
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
# [+] An ARI media id: ARI's media parameter is a comma-separated list, so no ',' (or spaces).
MEDIA: Schema = {"type": "string", "maxLength": 256, "pattern": r"^[A-Za-z0-9_./:@#*+-]*$"}
EMPTY: Schema = {"type": "object", "properties": {}}
STRING: Schema = {"type": "string"}
HTTP_URL: Schema = {"type": "string", "pattern": "^https?://"}


def leg(default: str | None) -> Schema:
    schema: dict[str, Any] = {"type": "string", "enum": LEG_VALUES}
    if default is not None:
        schema["default"] = default
    return schema


def boolean(default: bool) -> Schema:
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
