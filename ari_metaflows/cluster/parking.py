"""Parking slots unique per account across the cluster: the ``parking_slots`` table, whose
primary key (account, slot) makes a claim an insert that only one instance can win; a release
is a delete. The park feature uses it through ``features.park.lots.SharedSlots``.

A row also describes its parked call (migration 0008): every instance lists the parked calls
of every server from it, routes a retrieval to the holder of the row's Asterisk, and the next
holder of that Asterisk adopts the call (``take_over`` hands it the rows; the park feature's
``adopt`` takes the parties still waiting in their bridge and frees the other slots).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..db.database import Database
from ..errors import DatastoreUnavailable
from ..features.park.lots import InheritedSlot, ParkedParty, SlotRange

logger = logging.getLogger(__name__)


# Listings show the rows of instances that still hold their Asterisk (as live legs do).
_HELD = (
    "JOIN asterisk_leases a ON a.asterisk = p.asterisk AND a.holder = p.instance "
    "AND a.expires_at > clock_timestamp()"
)
_COLUMNS = (
    "p.account_id, p.slot, p.asterisk, p.instance, p.channel_id, p.channel_name, p.call_id, "
    "p.parker, p.timeout, p.bridge_id, extract(epoch FROM p.parked_at)::float8 AS parked_at"
)


class PgSharedSlots:
    def __init__(self, db: Database, asterisk: str, instance: str) -> None:
        self.db = db
        self.asterisk = asterisk
        self.instance = instance
        self._releases: set[asyncio.Task[None]] = set()
        self._inherited: dict[str, InheritedSlot] = {}

    async def claim(
        self, account_id: str, wanted: str | None, slots: SlotRange, party: ParkedParty
    ) -> str | None:
        details = (
            party.channel_id,
            party.channel_name,
            party.call_id,
            party.parker,
            party.timeout,
            party.bridge_id,
        )
        # Each lost race means another claim took a slot of the lot: the lot is full after at
        # most one attempt per slot.
        for _ in range(slots.last - slots.first + 2):
            async with self.db.connection() as conn:
                if wanted is not None:
                    slot = await conn.fetchval(
                        "INSERT INTO parking_slots (account_id, slot, asterisk, instance, "
                        "channel_id, channel_name, call_id, parker, timeout, bridge_id) "
                        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                        "ON CONFLICT DO NOTHING RETURNING slot",
                        account_id,
                        wanted,
                        self.asterisk,
                        self.instance,
                        *details,
                    )
                    return None if slot is None else str(slot)
                slot = await conn.fetchval(
                    """
                    INSERT INTO parking_slots (account_id, slot, asterisk, instance, channel_id,
                                               channel_name, call_id, parker, timeout, bridge_id)
                    SELECT $1, s::text, $2, $3, $4, $5, $6, $7, $8, $9
                    FROM generate_series($10::int, $11::int) AS s
                    WHERE NOT EXISTS (SELECT 1 FROM parking_slots p
                                      WHERE p.account_id = $1 AND p.slot = s::text)
                    ORDER BY s LIMIT 1
                    ON CONFLICT DO NOTHING RETURNING slot
                    """,
                    account_id,
                    self.asterisk,
                    self.instance,
                    *details,
                    slots.first,
                    slots.last,
                )
                if slot is not None:
                    return str(slot)
                full = await conn.fetchval(
                    "SELECT count(*) >= $2 FROM parking_slots WHERE account_id = $1 "
                    "AND slot ~ '^[0-9]+$' AND slot::int BETWEEN $3 AND $4",
                    account_id,
                    slots.last - slots.first + 1,
                    slots.first,
                    slots.last,
                )
                if full:
                    return None
        return None

    def release(self, account_id: str, slot: str) -> None:
        task = asyncio.create_task(self._release(account_id, slot))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, account_id: str, slot: str) -> None:
        try:
            async with self.db.connection() as conn:
                await conn.execute(
                    "DELETE FROM parking_slots WHERE account_id = $1 AND slot = $2 "
                    "AND asterisk = $3 AND instance = $4",
                    account_id,
                    slot,
                    self.asterisk,
                    self.instance,
                )
        except DatastoreUnavailable:
            # The next holder of this Asterisk frees it (take_over, then adopt).
            logger.warning(
                "parking slot %s of %s not released: database unavailable", slot, account_id
            )

    async def take_over(self) -> int:
        """This instance now holds the Asterisk (and serves no call there yet): every slot
        taken on it becomes ours (an instance that lost the Asterisk can no longer release
        them; this one may have held it before), kept for the park feature to adopt their calls
        after the resync (``inherited``). Answers how many."""
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                f"""
                UPDATE parking_slots p SET instance = $2
                WHERE p.asterisk = $1
                RETURNING {_COLUMNS},
                    greatest(coalesce(p.timeout, 0)
                             - extract(epoch FROM clock_timestamp() - p.parked_at), 0)::float8
                        AS remaining
                """,
                self.asterisk,
                self.instance,
            )
        self._inherited = {}
        for row in rows:
            if row["parker"] is None:
                self.release(row["account_id"], row["slot"])  # a row of before 0008
                continue
            party = ParkedParty(
                row["channel_id"],
                row["channel_name"] or "",
                row["call_id"] or "",
                row["parker"],
                float(row["timeout"] or 0.0),
                row["bridge_id"],
            )
            self._inherited[party.channel_id] = InheritedSlot(
                row["account_id"], row["slot"], party, row["parked_at"], row["remaining"]
            )
        return len(rows)

    def inherited(self) -> dict[str, InheritedSlot]:
        inherited, self._inherited = self._inherited, {}
        return inherited

    async def close(self) -> None:
        tasks = list(self._releases)
        await asyncio.gather(*tasks, return_exceptions=True)


class ParkedCalls:
    """Every instance's parked calls, as the parking listing shows them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def of_account(self, account_id: str, skip: set[str]) -> list[dict[str, Any]]:
        """The account's parked calls on Asterisk servers not in ``skip``."""
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM parking_slots p {_HELD} "
                "WHERE p.account_id = $1 AND p.asterisk <> ALL($2::text[])",
                account_id,
                sorted(skip),
            )
        return [view(row) for row in rows]

    async def find(
        self, account_id: str, slot: str, *, held_only: bool = True
    ) -> dict[str, Any] | None:
        """The call parked in ``slot``; ``held_only=False`` also finds the row of a holder
        whose lease has lapsed (a retrieval is then 503, not 404: the call may well wait)."""
        held = _HELD if held_only else ""
        async with self.db.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM parking_slots p {held} "
                "WHERE p.account_id = $1 AND p.slot = $2",
                account_id,
                slot,
            )
        return None if row is None else view(row)


def view(row: Any) -> dict[str, Any]:
    """A row as the listing shows a parked call (``ParkFeature.parked_calls`` plus where)."""
    return {
        "slot": row["slot"],
        "channel_id": row["channel_id"],
        "name": row["channel_name"],
        "call_id": row["call_id"],
        "parker": row["parker"],
        "parked_at": row["parked_at"],
        "timeout": row["timeout"],
        "asterisk": row["asterisk"],
        "instance": row["instance"],
    }
