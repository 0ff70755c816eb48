"""Recording rows in PostgreSQL: idempotent upserts for the journal, pages for the API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..db.database import Database
from ..db.paging import decode_start_key, encode_start_key
from ..errors import NotFound
from .model import Recording

_UPSERT = """
INSERT INTO recordings (id, account_id, owner_type, owner_id, call_id, legs, name, format, label,
                        state, started_at, ended_at, duration, failure_cause, version, asterisk)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (id) DO UPDATE SET
    legs = EXCLUDED.legs, label = EXCLUDED.label, state = EXCLUDED.state,
    ended_at = EXCLUDED.ended_at, duration = EXCLUDED.duration,
    failure_cause = EXCLUDED.failure_cause, version = EXCLUDED.version
WHERE recordings.version < EXCLUDED.version
"""


def _arguments(recording: Recording) -> tuple[object, ...]:
    return (
        recording.id,
        recording.account_id,
        recording.owner_type,
        recording.owner_id,
        recording.call_id,
        recording.legs,
        recording.name,
        recording.format,
        recording.label,
        recording.state,
        recording.started_at,
        recording.ended_at,
        recording.duration,
        recording.failure_cause,
        recording.version,
        recording.asterisk,
    )


MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True)
class RecordingPage:
    recordings: list[Recording]
    next_start_key: str | None


class RecordingStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, recording: Recording) -> None:
        """Write the whole row unless the database already holds a newer version."""
        async with self._db.connection() as conn:
            await conn.execute(_UPSERT, *_arguments(recording))

    async def upsert_many(self, recordings: Sequence[Recording]) -> None:
        """``upsert`` for several rows in one pipelined round (one pooled connection)."""
        async with self._db.connection() as conn:
            await conn.executemany(_UPSERT, [_arguments(r) for r in recordings])

    async def get(self, account_id: str, recording_id: str) -> Recording:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM recordings WHERE account_id = $1 AND id = $2",
                account_id,
                recording_id,
            )
        if row is None:
            raise NotFound(f"no recording {recording_id} in this account")
        return Recording.from_row(row)

    async def by_name(self, name: str) -> Recording | None:
        async with self._db.connection() as conn:
            row = await conn.fetchrow("SELECT * FROM recordings WHERE name = $1", name)
        return None if row is None else Recording.from_row(row)

    async def live(self) -> list[Recording]:
        """Rows still marked as recording (for reconciliation after a restart)."""
        async with self._db.connection() as conn:
            rows = await conn.fetch("SELECT * FROM recordings WHERE state = 'recording'")
        return [Recording.from_row(r) for r in rows]

    async def page(
        self,
        account_id: str,
        *,
        owner_id: str | None = None,
        call_id: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        start_key: str | None = None,
    ) -> RecordingPage:
        """Newest first; ``start_key`` continues where the previous page stopped."""
        clauses = ["account_id = $1"]
        args: list[object] = [account_id]
        if owner_id is not None:
            args.append(owner_id)
            clauses.append(f"owner_id = ${len(args)}")
        if call_id is not None:
            args.append(call_id)
            clauses.append(f"call_id = ${len(args)}")
        if start_key is not None:
            started, recording_id = decode_start_key(start_key)
            args += [started, recording_id]
            clauses.append(f"(started_at, id) <= (${len(args) - 1}, ${len(args)})")
        args.append(page_size + 1)
        query = (
            f"SELECT * FROM recordings WHERE {' AND '.join(clauses)} "
            f"ORDER BY started_at DESC, id DESC LIMIT ${len(args)}"
        )
        async with self._db.connection() as conn:
            rows = await conn.fetch(query, *args)
        found = [Recording.from_row(r) for r in rows]
        following = found[page_size] if len(found) > page_size else None
        return RecordingPage(
            found[:page_size],
            encode_start_key(following.started_at, following.id) if following else None,
        )

    async def delete(self, account_id: str, recording_id: str) -> None:
        async with self._db.connection() as conn:
            status = await conn.execute(
                "DELETE FROM recordings WHERE account_id = $1 AND id = $2",
                account_id,
                recording_id,
            )
        if status.endswith(" 0"):
            raise NotFound(f"no recording {recording_id} in this account")
