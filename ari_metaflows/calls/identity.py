"""Who owns a leg (SPEC §3): channel variables, else the endpoint name, else the default account.

``channelvars`` (ari.conf) bring the variables inside every snapshot; unset ones are "". Only
when a snapshot carries no ``channelvars`` at all (ari.conf without them) are the variables
read with ``GET /channels/{id}/variable``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from ..metaflows.resolver import LegIdentity

ACCOUNT_VAR = "METAFLOWS_ACCOUNT_ID"
USER_VAR = "METAFLOWS_USER_ID"
DEVICE_VAR = "METAFLOWS_DEVICE_ID"
OWNER_VARS = (ACCOUNT_VAR, USER_VAR, DEVICE_VAR)

_ID_RE = re.compile(r"^[A-Za-z0-9_@+.-]{1,128}$")
# PJSIP/alice-0000001a → alice;  Local/bob@ctx-00000002;1 → bob (its extension)
_ENDPOINT_RE = re.compile(r"^(?:PJSIP|SIP|IAX2)/(.+)-[0-9a-f]{8}$")
_LOCAL_RE = re.compile(r"^Local/([^@/]+)@")

VariableReader = Callable[[str], Awaitable[str | None]]


def endpoint_name(channel_name: str) -> str | None:
    match = _ENDPOINT_RE.match(channel_name) or _LOCAL_RE.match(channel_name)
    return match.group(1) if match else None


def _clean(value: Any) -> str | None:
    if isinstance(value, str) and _ID_RE.match(value):
        return value
    return None


async def identity_of(
    snapshot: dict[str, Any], default_account: str | None, read_variable: VariableReader
) -> LegIdentity | None:
    """The leg's owner, or None when it has no account (and so no metaflows)."""
    variables = snapshot.get("channelvars")
    if isinstance(variables, dict):
        values = {name: _clean(variables.get(name)) for name in OWNER_VARS}
    else:
        values = {name: _clean(await read_variable(name)) for name in OWNER_VARS}
    account = values[ACCOUNT_VAR] or default_account
    if account is None:
        return None
    device = values[DEVICE_VAR] or _clean(endpoint_name(str(snapshot.get("name", ""))))
    return LegIdentity(account, values[USER_VAR], device)
