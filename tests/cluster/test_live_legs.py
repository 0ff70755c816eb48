"""Live legs in PostgreSQL (issue 18): written only while the writer holds the leg's Asterisk,
deleted only by their writer, dropped by the next holder."""

from __future__ import annotations

import json

from ari_metaflows.cluster.lease import PgLeaseStore
from ari_metaflows.cluster.live import Batch, LiveLegs
from ari_metaflows.db.database import Database


def row(channel: str, asterisk: str, account: str = "acc1") -> tuple[str, ...]:
    view = {"id": channel, "asterisk": asterisk, "account_id": account}
    return (channel, "call-" + channel, account, "alice", "Up", asterisk, json.dumps(view))


def batch(*upserts: tuple[str, ...], deletes: tuple[tuple[str, str], ...] = ()) -> Batch:
    unit = Batch()
    unit.upserts.extend(upserts)  # type: ignore[arg-type]
    unit.deletes.extend(deletes)
    return unit


async def test_rows_are_fenced_by_the_lease_and_taken_over_by_the_next_holder(
    db: Database,
) -> None:
    leases = PgLeaseStore(db)
    old, new = LiveLegs(db, "i1"), LiveLegs(db, "i2")
    assert await leases.acquire("ast1", "i1", 30)
    await old._store(batch(row("c1", "ast1"), row("c2", "ast1")))
    assert [v["id"] for v in await new.of_account("acc1", set())] == ["c1", "c2"]
    assert await new.find("acc1", "c2") is not None
    assert await new.find("acc2", "c2") is None  # another account sees nothing
    assert await new.of_account("acc1", {"ast1"}) == []  # what the reader holds is skipped

    await leases.release("ast1", "i1")
    # Nobody holds ast1: its rows are not listed, yet an action finds them (→ 503, not 404).
    assert await new.of_account("acc1", set()) == []
    assert await new.find("acc1", "c2") is None
    assert await new.find("acc1", "c2", held_only=False) is not None
    assert await leases.acquire("ast1", "i2", 30)
    assert await new.take_over("ast1") == 2
    await new._store(batch(row("c1", "ast1")))  # the adopted call, written again
    # The old holder, late: it can neither overwrite nor delete the new holder's rows.
    await old._store(batch(row("c3", "ast1"), deletes=(("ast1", "c1"),)))
    views = await new.of_account("acc1", set())
    assert [v["id"] for v in views] == ["c1"]
    # The same channel id on another server is another leg.
    assert await leases.acquire("ast2", "i1", 30)
    await old._store(batch(row("c1", "ast2")))
    assert sorted(v["asterisk"] for v in await new.of_account("acc1", set())) == ["ast1", "ast2"]
