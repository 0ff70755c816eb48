"""Kazoo-style ``start_key`` for keyset pages ordered by (time, id), newest first."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from ..errors import InvalidRequest


def encode_start_key(moment: datetime, row_id: str) -> str:
    raw = f"{moment.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_start_key(key: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)).decode()
        moment, separator, row_id = raw.partition("|")
        if not separator:
            raise ValueError("no separator")
        return datetime.fromisoformat(moment), row_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest("start_key is not one this server gave out") from exc
