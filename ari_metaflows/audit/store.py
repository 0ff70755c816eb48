"""Audit rows in PostgreSQL: batch inserts for the trail, filtered pages for the API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..db.database import Database
from ..db.paging import decode_start_key, encode_start_key
from .model import COLUMNS, MetaflowEvent

_INSERT = (
    f"INSERT INTO metaflow_events ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(COLUMNS) + 1))}) "
    "ON CONFLICT (id) DO NOTHING"
)

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True)
class EventPage:
    events: list[MetaflowEvent]
    next_start_key: str | None


@dataclass(frozen=True)
class EventFilter:
    call_id: str | None = None
    owner_id: str | None = None  # the owner leg's user or device
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


class EventStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, events: Sequence[MetaflowEvent]) -> None:
        """All or nothing, and idempotent (a retried batch inserts nothing twice)."""
        async with self._db.transaction() as conn:
            await conn.executemany(_INSERT, [event.record() for event in events])

    async def page(
        self,
        account_id: str,
        where: EventFilter,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        start_key: str | None = None,
    ) -> EventPage:
        """Newest first; ``start_key`` continues where the previous page stopped."""
        clauses = ["account_id = $1"]
        args: list[object] = [account_id]

        def add(clause: str, *values: object) -> None:
            """``clause`` with ``{}`` for each value, in order."""
            numbers = []
            for value in values:
                args.append(value)
                numbers.append(f"${len(args)}")
            clauses.append(clause.format(*numbers))

        if where.call_id is not None:
            add("call_id = {}", where.call_id)
        if where.owner_id is not None:
            add("{0} IN (user_id, device_id)", where.owner_id)
        if where.since is not None:
            add("occurred_at >= {}", where.since)
        if where.until is not None:
            add("occurred_at < {}", where.until)
        if start_key is not None:
            add("(occurred_at, id) <= ({}, {})", *decode_start_key(start_key))
        args.append(page_size + 1)
        query = (
            f"SELECT {', '.join(COLUMNS)} FROM metaflow_events WHERE {' AND '.join(clauses)} "
            f"ORDER BY occurred_at DESC, id DESC LIMIT ${len(args)}"
        )
        async with self._db.connection() as conn:
            rows = await conn.fetch(query, *args)
        found = [MetaflowEvent.from_row(row) for row in rows]
        following = found[page_size] if len(found) > page_size else None
        return EventPage(
            found[:page_size],
            encode_start_key(following.occurred_at, following.id) if following else None,
        )
