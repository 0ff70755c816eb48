"""Parking slots unique per account across the cluster (issue 18): a claim is an insert under
the (account, slot) key, so two instances never hand out the same slot."""

from __future__ import annotations

import asyncio

from ari_metaflows.cluster.parking import ParkedCalls, PgSharedSlots
from ari_metaflows.db.database import Database
from ari_metaflows.features.park.lots import ParkedParty, SlotRange
from ari_metaflows.testing.eventually import eventually

LOT = SlotRange(701, 705)


def party(channel_id: str) -> ParkedParty:
    return ParkedParty(
        channel_id, f"PJSIP/{channel_id}", f"call-{channel_id}", "PJSIP/bob", 60.0, "b1"
    )


async def test_concurrent_claims_on_two_servers_never_collide(db: Database) -> None:
    one, two = PgSharedSlots(db, "ast1", "i1"), PgSharedSlots(db, "ast2", "i2")
    claims = await asyncio.gather(
        *(
            (one if n % 2 else two).claim("acc1", None, LOT, party(f"chan-{n}"))
            for n in range(8)  # more claims than slots
        )
    )
    taken = [slot for slot in claims if slot is not None]
    assert sorted(taken) == ["701", "702", "703", "704", "705"]  # each slot once, lot full
    assert claims.count(None) == 3
    # Another account has its own lot.
    assert await one.claim("acc2", None, LOT, party("chan-x")) == "701"


async def test_a_wanted_slot_is_taken_once_and_free_again_after_release(db: Database) -> None:
    one, two = PgSharedSlots(db, "ast1", "i1"), PgSharedSlots(db, "ast2", "i2")
    assert await one.claim("acc1", "703", LOT, party("a")) == "703"
    assert await two.claim("acc1", "703", LOT, party("b")) is None
    assert await two.claim("acc1", None, LOT, party("b")) == "701"
    two.release("acc1", "703")  # not its slot: nothing happens
    await two.close()
    assert await two.claim("acc1", "703", LOT, party("b")) is None
    one.release("acc1", "703")
    await one.close()
    assert await eventually(lambda: two.claim("acc1", "703", LOT, party("b")), timeout=2) == "703"


async def test_the_new_holder_of_an_asterisk_inherits_the_slots_its_previous_holder_took(
    db: Database,
) -> None:
    dead, heir = PgSharedSlots(db, "ast1", "i1"), PgSharedSlots(db, "ast1", "i2")
    other = PgSharedSlots(db, "ast2", "i3")
    assert await dead.claim("acc1", "701", LOT, party("a")) == "701"
    assert await other.claim("acc1", "702", LOT, party("b")) == "702"
    assert await heir.take_over() == 1
    inherited = heir.inherited()
    assert list(inherited) == ["a"]
    held = inherited["a"]
    assert (held.account_id, held.slot, held.party) == ("acc1", "701", party("a"))
    assert 59.0 < held.remaining <= 60.0
    assert heir.inherited() == {}  # handed over once
    # The dead holder can no longer free it; the heir can.
    dead.release("acc1", "701")
    await dead.close()
    assert await heir.claim("acc1", "701", LOT, party("c")) is None
    heir.release("acc1", "701")
    await heir.close()
    assert await heir.claim("acc1", None, LOT, party("c")) == "701"
    assert await heir.claim("acc1", "702", LOT, party("d")) is None  # ast2's slot stays taken
    # Holding the Asterisk again, an instance inherits every slot on it, its own earlier ones
    # too (its calls went when it lost the Asterisk).
    assert await dead.take_over() == 1
    assert list(dead.inherited()) == ["c"]
    assert await dead.take_over() == 1
    assert list(dead.inherited()) == ["c"]


async def test_every_instance_lists_the_parked_calls_of_held_servers(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO asterisk_leases (asterisk, holder, expires_at) VALUES "
            "('ast1', 'i1', clock_timestamp() + interval '1 minute'), "
            "('ast2', 'i3', clock_timestamp() - interval '1 second')"
        )
    one, two = PgSharedSlots(db, "ast1", "i1"), PgSharedSlots(db, "ast2", "i3")
    assert await one.claim("acc1", "703", LOT, party("a")) == "703"
    assert await two.claim("acc1", "704", LOT, party("b")) == "704"
    listing = ParkedCalls(db)
    (parked,) = await listing.of_account("acc1", set())  # ast2's holder has lapsed
    assert parked["slot"] == "703"
    assert parked["channel_id"] == "a"
    assert (parked["asterisk"], parked["instance"], parked["parker"]) == ("ast1", "i1", "PJSIP/bob")
    assert parked["timeout"] == 60.0
    assert isinstance(parked["parked_at"], float)
    assert await listing.of_account("acc1", {"ast1"}) == []  # held here: listed from memory
    assert await listing.find("acc1", "704") is None
    lapsed = await listing.find("acc1", "704", held_only=False)
    assert lapsed is not None
    assert lapsed["asterisk"] == "ast2"
    assert await listing.find("acc2", "703") is None
