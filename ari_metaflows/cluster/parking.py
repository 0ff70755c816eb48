"""Parking slots unique per account across the cluster: the ``parking_slots`` table, whose
primary key (account, slot) makes a claim an insert that only one instance can win; a release
is a delete. The park feature uses it through ``features.park.lots.SharedSlots``."""

from __future__ import annotations

import asyncio
import logging

from ..db.database import Database
from ..errors import DatastoreUnavailable
from ..features.park.lots import SlotRange

logger = logging.getLogger(__name__)

CLAIM_ATTEMPTS = 3  # another instance took the first free slot at the same moment: try again


class PgSharedSlots:
    def __init__(self, db: Database, asterisk: str, instance: str) -> None:
        self.db = db
        self.asterisk = asterisk
        self.instance = instance
        self._releases: set[asyncio.Task[None]] = set()

    async def claim(
        self, account_id: str, wanted: str | None, slots: SlotRange, channel_id: str
    ) -> str | None:
        for _ in range(CLAIM_ATTEMPTS):
            async with self.db.connection() as conn:
                if wanted is not None:
                    slot = await conn.fetchval(
                        "INSERT INTO parking_slots (account_id, slot, asterisk, instance, "
                        "channel_id) VALUES ($1, $2, $3, $4, $5) "
                        "ON CONFLICT DO NOTHING RETURNING slot",
                        account_id,
                        wanted,
                        self.asterisk,
                        self.instance,
                        channel_id,
                    )
                    return None if slot is None else str(slot)
                slot = await conn.fetchval(
                    """
                    INSERT INTO parking_slots (account_id, slot, asterisk, instance, channel_id)
                    SELECT $1, s::text, $2, $3, $4 FROM generate_series($5::int, $6::int) AS s
                    WHERE NOT EXISTS (SELECT 1 FROM parking_slots p
                                      WHERE p.account_id = $1 AND p.slot = s::text)
                    ORDER BY s LIMIT 1
                    ON CONFLICT DO NOTHING RETURNING slot
                    """,
                    account_id,
                    self.asterisk,
                    self.instance,
                    channel_id,
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
            # The next holder of this Asterisk deletes it (take_over).
            logger.warning(
                "parking slot %s of %s not released: database unavailable", slot, account_id
            )

    async def take_over(self) -> None:
        """This instance now holds the Asterisk: slots other instances took on it go (its
        parked calls were not adopted: a lone parked party is hung up by the resync)."""
        async with self.db.connection() as conn:
            await conn.execute(
                "DELETE FROM parking_slots WHERE asterisk = $1 AND instance <> $2",
                self.asterisk,
                self.instance,
            )

    async def close(self) -> None:
        tasks = list(self._releases)
        await asyncio.gather(*tasks, return_exceptions=True)
