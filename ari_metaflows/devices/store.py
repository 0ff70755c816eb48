"""Devices in PostgreSQL, with revisions; and the directory the call engine reads.

Revisions follow the metaflow documents' form (``<seq>-<random>``), so ``If-Match`` works the
same way on both.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..db.database import Database
from ..db.paging import decode_start_key, encode_start_key
from ..errors import NotFound, RevisionConflict
from .model import Device


@dataclass(frozen=True, slots=True)
class StoredDevice:
    account_id: str
    id: str
    document: dict[str, Any]
    revision: str

    def as_data(self) -> dict[str, Any]:
        """The API's ``data``: the document with its ``id``."""
        return {**self.document, "id": self.id}

    def summary(self) -> dict[str, Any]:
        """One row of a listing, as crossbar's device listing shows it."""
        data: dict[str, Any] = {"id": self.id, "name": self.document.get("name")}
        for key in ("owner_id", "enabled", "device_type"):
            if key in self.document:
                data[key] = self.document[key]
        sip = self.document.get("sip")
        if isinstance(sip, dict) and "username" in sip:
            data["username"] = sip["username"]
        return data

    def device(self) -> Device:
        return Device.from_document(self.account_id, self.id, self.document)


def _owner_of(document: dict[str, Any]) -> str | None:
    owner = document.get("owner_id")
    return owner if isinstance(owner, str) else None


def _stored(row: asyncpg.Record) -> StoredDevice:
    return StoredDevice(row["account_id"], row["id"], json.loads(row["document"]), row["revision"])


_COLUMNS = "account_id, id, document, revision"
DEFAULT_PAGE_SIZE = 50  # Kazoo's crossbar default
MAX_PAGE_SIZE = 500


@dataclass(frozen=True, slots=True)
class DevicePage:
    devices: list[StoredDevice]
    next_start_key: str | None  # where the next page starts; None on the last page


class DeviceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, account_id: str, document: dict[str, Any]) -> StoredDevice:
        """Store a new (validated) device under a fresh id."""
        device_id = uuid.uuid4().hex
        async with self.db.connection() as conn:
            row = await conn.fetchrow(
                f"INSERT INTO devices (account_id, id, owner_id, document, seq, revision) "
                f"VALUES ($1, $2, $3, $4::json, 1, '1-' || $5) RETURNING {_COLUMNS}",
                account_id,
                device_id,
                _owner_of(document),
                json.dumps(document),
                secrets.token_hex(16),
            )
        assert row is not None
        return _stored(row)

    async def get(self, account_id: str, device_id: str) -> StoredDevice | None:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM devices WHERE account_id = $1 AND id = $2",
                account_id,
                device_id,
            )
        return None if row is None else _stored(row)

    async def list(self, account_id: str, owner_id: str | None = None) -> list[StoredDevice]:
        """The account's devices (only ``owner_id``'s when given), oldest first."""
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM devices WHERE account_id = $1 "
                "AND ($2::text IS NULL OR owner_id = $2) ORDER BY created_at, id",
                account_id,
                owner_id,
            )
        return [_stored(row) for row in rows]

    async def page(
        self,
        account_id: str,
        owner_id: str | None = None,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        start_key: str | None = None,
    ) -> DevicePage:
        """One page of ``list`` (oldest first); ``start_key`` (from ``next_start_key``)
        continues where the previous page stopped (``InvalidRequest`` if it is not ours)."""
        after = decode_start_key(start_key) if start_key is not None else None
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS}, created_at FROM devices WHERE account_id = $1 "
                "AND ($2::text IS NULL OR owner_id = $2) "
                "AND ($3::timestamptz IS NULL OR (created_at, id) >= ($3, $4)) "
                "ORDER BY created_at, id LIMIT $5",
                account_id,
                owner_id,
                after[0] if after else None,
                after[1] if after else "",
                page_size + 1,
            )
        following = rows[page_size] if len(rows) > page_size else None
        return DevicePage(
            [_stored(row) for row in rows[:page_size]],
            encode_start_key(following["created_at"], following["id"]) if following else None,
        )

    async def replace(
        self,
        account_id: str,
        device_id: str,
        document: dict[str, Any],
        *,
        if_match: str | None = None,
    ) -> StoredDevice:
        """Replace a device's whole (validated) document; 404 when unknown, 409 on If-Match."""
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "UPDATE devices SET document = $3::json, owner_id = $4, seq = seq + 1, "
                "  revision = (seq + 1)::text || '-' || $5, updated_at = now() "
                "WHERE account_id = $1 AND id = $2 AND ($6::text IS NULL OR revision = $6) "
                f"RETURNING {_COLUMNS}",
                account_id,
                device_id,
                json.dumps(document),
                _owner_of(document),
                secrets.token_hex(16),
                if_match,
            )
            if row is None:
                await self._missing_or_conflict(conn, account_id, device_id)
        assert row is not None
        return _stored(row)

    async def delete(
        self, account_id: str, device_id: str, *, if_match: str | None = None
    ) -> StoredDevice:
        """Remove a device; answers what was removed. 404 when unknown, 409 on If-Match."""
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "DELETE FROM devices WHERE account_id = $1 AND id = $2 "
                f"AND ($3::text IS NULL OR revision = $3) RETURNING {_COLUMNS}",
                account_id,
                device_id,
                if_match,
            )
            if row is None:
                await self._missing_or_conflict(conn, account_id, device_id)
        assert row is not None
        return _stored(row)

    @staticmethod
    async def _missing_or_conflict(conn: Any, account_id: str, device_id: str) -> None:
        exists = await conn.fetchval(
            "SELECT 1 FROM devices WHERE account_id = $1 AND id = $2", account_id, device_id
        )
        if exists:
            raise RevisionConflict("the device's current revision does not match If-Match")
        raise NotFound(f"no device {device_id} in account {account_id}")


class DeviceDirectory:
    """What the call engine asks of the directory (intercept, move)."""

    def __init__(self, store: DeviceStore) -> None:
        self.store = store

    async def get(self, account_id: str, device_id: str) -> Device | None:
        stored = await self.store.get(account_id, device_id)
        return None if stored is None else stored.device()

    async def of_owner(self, account_id: str, user_id: str) -> list[Device]:
        """All of a user's devices, enabled or not (callers choose), oldest first."""
        return [stored.device() for stored in await self.store.list(account_id, user_id)]
