"""Live legs in PostgreSQL, written behind by the instance that holds their Asterisk.

A call's task only marks the call (``mark``: a set insertion, also on the DTMF path); the
writer task snapshots the marked calls' legs (``Call.describe``) a moment later and upserts
them, deleting the rows of legs that are gone. Writes are fenced by the lease: a row is
written only while this instance holds the leg's Asterisk, and an instance only deletes its
own rows, so an instance that lost its Asterisk can never overwrite the new holder's rows.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from ..backoff import Backoff
from ..calls.call import Call
from ..db.database import Database
from ..writebehind import WRITER_RETRY, WriteBehind

logger = logging.getLogger(__name__)

# Listings show the rows of instances that still hold their Asterisk: a holder that died
# without a successor leaves rows nobody vouches for.
_HELD = (
    "JOIN asterisk_leases a ON a.asterisk = l.asterisk AND a.holder = l.instance "
    "AND a.expires_at > clock_timestamp()"
)

LINGER = 0.05  # seconds: let a burst of changes of one call become one write


class Batch:
    __slots__ = ("calls", "deletes", "upserts")

    def __init__(self) -> None:
        self.upserts: list[tuple[str, str, str | None, str | None, str, str, str]] = []
        self.deletes: list[tuple[str, str]] = []  # (asterisk, channel id)
        self.calls: list[tuple[str, set[str]]] = []  # call id → channels now written


class LiveLegs(WriteBehind[Batch]):
    name = "live legs"

    def __init__(self, db: Database, instance: str, retry: Backoff = WRITER_RETRY) -> None:
        super().__init__(retry)
        self.db = db
        self.instance = instance
        self._dirty: dict[Call, None] = {}  # ordered set of calls to snapshot
        self._written: dict[str, set[str]] = {}  # call id → channel ids with a row

    # -- the call side ---------------------------------------------------------------------

    def mark(self, call: Call) -> None:
        self._dirty[call] = None
        self._wake_writer()

    # -- WriteBehind hooks -----------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._dirty)

    async def _before_drain(self) -> None:
        await asyncio.sleep(LINGER)

    def _next_unit(self) -> Batch | None:
        if not self._dirty:
            return None
        batch = Batch()
        calls, self._dirty = list(self._dirty), {}
        for call in calls:
            live: set[str] = set()
            if call.serving:
                for role, leg in call.legs.items():
                    if not leg.party or leg.gone:
                        continue
                    view = call.describe(role)
                    view["instance"] = self.instance
                    live.add(leg.channel_id)
                    batch.upserts.append(
                        (
                            leg.channel_id,
                            call.id,
                            view.get("account_id"),
                            view.get("user_id") or view.get("device_id"),
                            str(view.get("state") or ""),
                            call.engine.asterisk,
                            json.dumps(view, default=str),
                        )
                    )
            asterisk = call.engine.asterisk
            batch.deletes.extend(
                (asterisk, channel) for channel in self._written.get(call.id, set()) - live
            )
            batch.calls.append((call.id, live))
        return batch

    async def _store(self, unit: Batch) -> bool:
        async with self.db.transaction() as conn:
            if unit.deletes:
                await conn.execute(
                    "DELETE FROM live_legs WHERE instance = $3 AND (asterisk, channel_id) IN "
                    "(SELECT * FROM unnest($1::text[], $2::text[]))",
                    [asterisk for asterisk, _ in unit.deletes],
                    [channel for _, channel in unit.deletes],
                    self.instance,
                )
            if unit.upserts:
                await conn.executemany(
                    """
                    INSERT INTO live_legs AS l (channel_id, call_id, account_id, owner_id,
                                                state, asterisk, instance, view, updated_at)
                    SELECT $1, $2, $3, $4, $5, $6, $8, $7::jsonb, clock_timestamp()
                    WHERE EXISTS (SELECT 1 FROM asterisk_leases WHERE asterisk = $6
                                  AND holder = $8 AND expires_at > clock_timestamp())
                    ON CONFLICT (asterisk, channel_id) DO UPDATE SET
                        call_id = EXCLUDED.call_id, account_id = EXCLUDED.account_id,
                        owner_id = EXCLUDED.owner_id, state = EXCLUDED.state,
                        instance = EXCLUDED.instance,
                        view = EXCLUDED.view, updated_at = EXCLUDED.updated_at
                    """,
                    [(*row, self.instance) for row in unit.upserts],
                )
        return True

    def _stored(self, unit: Batch) -> None:
        for call_id, live in unit.calls:
            if live:
                self._written[call_id] = live
            else:
                self._written.pop(call_id, None)

    # -- takeover and reads ----------------------------------------------------------------

    async def take_over(self, asterisk: str) -> int:
        """This instance now holds ``asterisk``: rows other instances wrote for it go (the
        resync adopts the calls that survived, which writes them again)."""
        async with self.db.connection() as conn:
            status = await conn.execute(
                "DELETE FROM live_legs WHERE asterisk = $1 AND instance <> $2",
                asterisk,
                self.instance,
            )
        return int(status.split()[-1])

    async def forget_asterisk(self, asterisk: str) -> None:
        """This instance no longer holds ``asterisk``: its rows for it go (best effort; the
        next holder deletes them anyway)."""
        async with self.db.connection() as conn:
            await conn.execute(
                "DELETE FROM live_legs WHERE asterisk = $1 AND instance = $2",
                asterisk,
                self.instance,
            )

    async def of_account(self, account_id: str, skip: set[str]) -> list[dict[str, Any]]:
        """Views of the account's live legs on Asterisk servers not in ``skip``."""
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT l.view FROM live_legs l {_HELD} "
                "WHERE l.account_id = $1 AND l.asterisk <> ALL($2::text[]) ORDER BY l.updated_at",
                account_id,
                sorted(skip),
            )
        return [json.loads(row["view"]) for row in rows]

    async def find(
        self, account_id: str, channel_id: str, *, held_only: bool = True
    ) -> dict[str, Any] | None:
        """The leg's view; ``held_only=False`` also finds the rows of a holder whose lease
        has lapsed (an action on it is then 503, not 404: the call may well be up)."""
        held = _HELD if held_only else ""
        async with self.db.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT l.view FROM live_legs l {held} "
                "WHERE l.account_id = $1 AND l.channel_id = $2 "
                "ORDER BY l.updated_at DESC LIMIT 1",
                account_id,
                channel_id,
            )
        return None if row is None else dict(json.loads(row["view"]))
