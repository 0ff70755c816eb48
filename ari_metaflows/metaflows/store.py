"""Per-owner metaflow documents in PostgreSQL, with revisions and change notification.

Every write sends ``NOTIFY metaflows_changed, '<account id>'`` in its transaction, so every
running instance (see ``resolver``) drops its cached view of that account once the write commits.
"""

from __future__ import annotations

import enum
import json
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..db.database import Database
from ..errors import RevisionConflict

logger = logging.getLogger(__name__)

CHANGE_CHANNEL = "metaflows_changed"


class OwnerKind(enum.StrEnum):
    ACCOUNT = "account"
    USER = "user"
    DEVICE = "device"


@dataclass(frozen=True, slots=True)
class Owner:
    account_id: str
    kind: OwnerKind
    owner_id: str

    @classmethod
    def account(cls, account_id: str) -> Owner:
        return cls(account_id, OwnerKind.ACCOUNT, account_id)

    @classmethod
    def user(cls, account_id: str, user_id: str) -> Owner:
        return cls(account_id, OwnerKind.USER, user_id)

    @classmethod
    def device(cls, account_id: str, device_id: str) -> Owner:
        return cls(account_id, OwnerKind.DEVICE, device_id)


@dataclass(frozen=True, slots=True)
class StoredDocument:
    document: dict[str, Any] | None
    revision: str | None


def _new_revision_suffix() -> str:
    return secrets.token_hex(16)


def normalise_revision(value: str | None) -> str | None:
    """Accept an If-Match revision bare or as a quoted entity tag."""
    if value is None:
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value


class MetaflowStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._listeners: list[Callable[[str], None]] = []

    def add_change_listener(self, callback: Callable[[str], None]) -> None:
        """Called with the account id after each committed local write."""
        self._listeners.append(callback)

    def _changed(self, account_id: str) -> None:
        for callback in self._listeners:
            callback(account_id)

    async def get(self, owner: Owner) -> StoredDocument:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT document, revision FROM metaflow_documents "
                "WHERE account_id = $1 AND owner_type = $2 AND owner_id = $3",
                owner.account_id,
                owner.kind.value,
                owner.owner_id,
            )
        if row is None or row["document"] is None:
            return StoredDocument(None, None)
        return StoredDocument(json.loads(row["document"]), row["revision"])

    async def load(self, owners: Iterable[Owner]) -> dict[Owner, dict[str, Any] | None]:
        """Fetch several owners' documents in one round trip (missing ones map to None)."""
        wanted = list(owners)
        result: dict[Owner, dict[str, Any] | None] = dict.fromkeys(wanted)
        if not wanted:
            return result
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                "SELECT d.account_id, d.owner_type, d.owner_id, d.document "
                "FROM metaflow_documents d "
                "JOIN unnest($1::text[], $2::text[], $3::text[]) AS w(a, t, o) "
                "  ON d.account_id = w.a AND d.owner_type = w.t AND d.owner_id = w.o "
                "WHERE d.document IS NOT NULL",
                [o.account_id for o in wanted],
                [o.kind.value for o in wanted],
                [o.owner_id for o in wanted],
            )
        for row in rows:
            owner = Owner(row["account_id"], OwnerKind(row["owner_type"]), row["owner_id"])
            result[owner] = json.loads(row["document"])
        return result

    async def put(
        self, owner: Owner, document: dict[str, Any], *, if_match: str | None = None
    ) -> StoredDocument:
        """Replace the owner's document (it must already be validated)."""
        revision = await self._write(owner, json.dumps(document), if_match)
        return StoredDocument(document, revision)

    async def delete(self, owner: Owner, *, if_match: str | None = None) -> StoredDocument:
        """Remove the owner's document; the tombstone's revision is returned."""
        revision = await self._write(owner, None, if_match)
        return StoredDocument(None, revision)

    async def _write(self, owner: Owner, text: str | None, if_match: str | None) -> str:
        suffix = _new_revision_suffix()
        key = (owner.account_id, owner.kind.value, owner.owner_id)
        async with self.db.transaction() as conn:
            if if_match is not None:
                revision = await conn.fetchval(
                    "UPDATE metaflow_documents SET document = $4::json, seq = seq + 1, "
                    "  revision = (seq + 1)::text || '-' || $5, updated_at = now() "
                    "WHERE account_id = $1 AND owner_type = $2 AND owner_id = $3 "
                    "  AND revision = $6 AND document IS NOT NULL "
                    "RETURNING revision",
                    *key,
                    text,
                    suffix,
                    if_match,
                )
                if revision is None:
                    raise RevisionConflict(
                        "the document's current revision does not match If-Match"
                    )
            else:
                revision = await conn.fetchval(
                    "INSERT INTO metaflow_documents "
                    "  (account_id, owner_type, owner_id, document, seq, revision) "
                    "VALUES ($1, $2, $3, $4::json, 1, '1-' || $5) "
                    "ON CONFLICT (account_id, owner_type, owner_id) DO UPDATE SET "
                    "  document = EXCLUDED.document, seq = metaflow_documents.seq + 1, "
                    "  revision = (metaflow_documents.seq + 1)::text || '-' || $5, "
                    "  updated_at = now() "
                    "RETURNING revision",
                    *key,
                    text,
                    suffix,
                )
            await conn.execute("SELECT pg_notify($1, $2)", CHANGE_CHANNEL, owner.account_id)
        self._changed(owner.account_id)
        assert isinstance(revision, str)
        return revision
