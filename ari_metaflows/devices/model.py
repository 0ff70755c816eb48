"""A device of the directory: its Kazoo-shaped document, validation, and how to dial it.

The schema is a subset of Kazoo's ``devices`` schema (same field names and meanings); fields it
does not name are kept as sent, as Kazoo keeps them. ``dial_string`` is ours [+]: an Asterisk
dial string for a device that is neither a PJSIP endpoint nor an outside number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ValidationFailed
from ..metaflows.schema import ErrorCollector, Schema

ID_PATTERN = r"^[A-Za-z0-9_@+.-]{1,128}$"

DEVICE_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 128},
        "owner_id": {"type": "string", "pattern": ID_PATTERN},
        "enabled": {"type": "boolean", "default": True},
        "device_type": {"type": "string", "minLength": 1, "maxLength": 64},
        "sip": {
            "type": "object",
            "properties": {
                # A PJSIP endpoint name: it becomes the dial string PJSIP/<username>.
                "username": {"type": "string", "pattern": r"^[A-Za-z0-9_.+-]{1,64}$"},
                "realm": {"type": "string", "maxLength": 253},
            },
        },
        "call_forward": {
            "type": "object",
            "properties": {
                "enabled": {"type": "boolean"},
                # Dialled as Local/<number>@<transfer context>: dialplan-safe characters only.
                "number": {"type": "string", "pattern": r"^\+?[0-9A-Za-z*#_-]{1,35}$"},
            },
        },
        "dial_string": {
            "type": "string",
            "maxLength": 256,
            "pattern": r"^[A-Za-z][A-Za-z0-9_]*/[A-Za-z0-9_@.:+*#/-]+$",
        },
    },
    "required": ["name"],
}

# The fields the server reads, in the order ``describe`` lists them.
SUMMARY_FIELDS = ("id", "name", "owner_id", "enabled", "device_type")


class DeviceUnreachable(Exception):
    """The device names no way to reach it (no sip.username, call_forward.number, dial_string)."""


def validate_device(document: Any) -> dict[str, Any]:
    """The validated device document with defaults filled; raise ``ValidationFailed``.

    ``id`` is the server's (from the path, or made at creation); a sent one is ignored.
    """
    errors = ErrorCollector()
    if isinstance(document, dict):
        document = {k: v for k, v in document.items() if k != "id"}
    result = errors.check(document, DEVICE_SCHEMA, ())
    if errors:
        raise ValidationFailed(errors.errors)
    assert isinstance(result, dict)
    return result


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class Device:
    """A stored device, typed for the call engine (intercept, move)."""

    account_id: str
    id: str
    name: str
    owner_id: str | None
    enabled: bool
    sip_username: str | None
    forward_number: str | None
    forward_enabled: bool
    explicit_dial_string: str | None

    @classmethod
    def from_document(cls, account_id: str, device_id: str, doc: Mapping[str, Any]) -> Device:
        sip = _object(doc.get("sip"))
        forward = _object(doc.get("call_forward"))
        return cls(
            account_id=account_id,
            id=device_id,
            name=str(doc.get("name", "")),
            owner_id=doc.get("owner_id"),
            enabled=doc.get("enabled", True) is not False,
            sip_username=sip.get("username"),
            forward_number=forward.get("number"),
            forward_enabled=forward.get("enabled") is True,
            explicit_dial_string=doc.get("dial_string"),
        )

    @property
    def reachable(self) -> bool:
        return bool(self.explicit_dial_string or self.sip_username or self.forward_number)

    def dial_string(self, transfer_context: str) -> str:
        """How Asterisk rings this device.

        ``dial_string`` wins; then an enabled ``call_forward`` (Kazoo's meaning: calls go to that
        number instead); then the PJSIP endpoint; then ``call_forward.number`` alone (a phone
        outside the PBX, e.g. Kazoo's ``cellphone`` devices). Outside numbers go through the
        transfer context, where the dialplan routes them.
        """
        if self.explicit_dial_string:
            return self.explicit_dial_string
        if self.forward_number and (self.forward_enabled or not self.sip_username):
            return f"Local/{self.forward_number}@{transfer_context}"
        if self.sip_username:
            return f"PJSIP/{self.sip_username}"
        raise DeviceUnreachable(
            f"device {self.id} has no sip.username, call_forward.number or dial_string"
        )
