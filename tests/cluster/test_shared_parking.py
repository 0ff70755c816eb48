"""Parking slots unique per account across the cluster (issue 18): a claim is an insert under
the (account, slot) key, so two instances never hand out the same slot."""

from __future__ import annotations

import asyncio

from ari_metaflows.cluster.parking import PgSharedSlots
from ari_metaflows.db.database import Database
from ari_metaflows.features.park.lots import SlotRange
from ari_metaflows.testing.eventually import eventually

LOT = SlotRange(701, 705)


async def test_concurrent_claims_on_two_servers_never_collide(db: Database) -> None:
    one, two = PgSharedSlots(db, "ast1", "i1"), PgSharedSlots(db, "ast2", "i2")
    claims = await asyncio.gather(
        *(
            (one if n % 2 else two).claim("acc1", None, LOT, f"chan-{n}")
            for n in range(8)  # more claims than slots
        )
    )
    taken = [slot for slot in claims if slot is not None]
    assert sorted(taken) == ["701", "702", "703", "704", "705"]  # each slot once, lot full
    assert claims.count(None) == 3
    # Another account has its own lot.
    assert await one.claim("acc2", None, LOT, "chan-x") == "701"


async def test_a_wanted_slot_is_taken_once_and_free_again_after_release(db: Database) -> None:
    one, two = PgSharedSlots(db, "ast1", "i1"), PgSharedSlots(db, "ast2", "i2")
    assert await one.claim("acc1", "703", LOT, "a") == "703"
    assert await two.claim("acc1", "703", LOT, "b") is None
    assert await two.claim("acc1", None, LOT, "b") == "701"
    two.release("acc1", "703")  # not its slot: nothing happens
    await two.close()
    assert await two.claim("acc1", "703", LOT, "b") is None
    one.release("acc1", "703")
    await one.close()
    assert await eventually(lambda: two.claim("acc1", "703", LOT, "b"), timeout=2) == "703"


async def test_the_new_holder_of_an_asterisk_drops_the_slots_its_previous_holder_took(
    db: Database,
) -> None:
    dead, heir = PgSharedSlots(db, "ast1", "i1"), PgSharedSlots(db, "ast1", "i2")
    other = PgSharedSlots(db, "ast2", "i3")
    assert await dead.claim("acc1", "701", LOT, "a") == "701"
    assert await other.claim("acc1", "702", LOT, "b") == "702"
    await heir.take_over()
    assert await heir.claim("acc1", None, LOT, "c") == "701"
    assert await heir.claim("acc1", "702", LOT, "d") is None  # ast2's slot stays taken
