"""The lease that gates each Asterisk's ARI connection (issue 18): one holder at a time, and a
holder that cannot renew drops ARI before its row can expire."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ari_metaflows.backoff import Backoff
from ari_metaflows.cluster.lease import LeasedSession, LeaseTiming, PgLeaseStore
from ari_metaflows.db.database import Database
from ari_metaflows.errors import DatastoreUnavailable
from ari_metaflows.testing.eventually import eventually

FAST = LeaseTiming(ttl=0.6, renew_every=0.1, margin=0.2)
QUICK_RETRY = Backoff(initial=0.02, maximum=0.05)


class FakeStore:
    """A lease table whose clock is the event loop's; it can fail or stall like a database."""

    def __init__(self) -> None:
        self.holder: str | None = None
        self.expires = 0.0
        self.down = False
        self.stalled = False
        self.released: list[str] = []

    async def acquire(self, asterisk: str, holder: str, ttl: float) -> bool:
        if self.stalled:
            await asyncio.Event().wait()
        if self.down:
            raise DatastoreUnavailable()
        now = asyncio.get_running_loop().time()
        if self.holder not in (None, holder) and self.expires > now:
            return False
        self.holder, self.expires = holder, now + ttl
        return True

    async def release(self, asterisk: str, holder: str) -> None:
        if self.holder == holder:
            self.holder = None
            self.released.append(holder)


class FakeAri:
    """Stands for ``AriConnection.run_forever``: connected until cancelled."""

    def __init__(self) -> None:
        self.connected = False
        self.sessions = 0
        self.dropped_at: list[float] = []

    async def run_forever(self) -> None:
        self.connected = True
        self.sessions += 1
        try:
            await asyncio.Event().wait()
        finally:
            self.connected = False
            self.dropped_at.append(asyncio.get_running_loop().time())


@pytest.fixture
async def held() -> AsyncIterator[tuple[LeasedSession, FakeStore, FakeAri, list[str]]]:
    store, ari, order = FakeStore(), FakeAri(), []

    async def dropped() -> None:
        order.append("dropped" if not ari.connected else "dropped while connected")

    session = LeasedSession(
        "ast1", "me", store, ari.run_forever, on_dropped=dropped, timing=FAST, retry=QUICK_RETRY
    )
    task = asyncio.create_task(session.run_forever())
    await eventually(lambda: ari.connected, timeout=2)
    yield session, store, ari, order
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("failure", ["down", "stalled"])
async def test_a_holder_that_loses_the_database_drops_ari_before_its_lease_can_expire(
    held: tuple[LeasedSession, FakeStore, FakeAri, list[str]], failure: str
) -> None:
    session, store, ari, order = held
    assert session.held
    assert store.holder == "me"
    setattr(store, failure, True)
    last_expiry = store.expires
    await eventually(lambda: not ari.connected, timeout=2, what="ARI dropped")
    assert ari.dropped_at[0] <= last_expiry - FAST.margin + 0.05  # at T - margin, not at T
    assert ari.dropped_at[0] < last_expiry
    assert not session.held
    assert order == ["dropped"]  # the calls are let go only once ARI is down
    # The database comes back: the lease is taken again and ARI reconnects.
    setattr(store, failure, False)
    await eventually(lambda: ari.connected and session.held, timeout=2)
    assert session.acquisitions == 2


async def test_a_holder_renews_while_the_database_answers(
    held: tuple[LeasedSession, FakeStore, FakeAri, list[str]],
) -> None:
    session, store, ari, _ = held
    await asyncio.sleep(FAST.ttl * 2)
    assert ari.connected
    assert ari.sessions == 1
    assert session.held
    assert store.expires > asyncio.get_running_loop().time()


async def test_a_standby_takes_over_when_the_holder_stops_and_the_holder_releases_first() -> None:
    store = FakeStore()
    aris = {name: FakeAri() for name in ("a", "b")}
    sessions = {
        name: LeasedSession(
            "ast1", name, store, aris[name].run_forever, timing=FAST, retry=QUICK_RETRY
        )
        for name in aris
    }
    first = asyncio.create_task(sessions["a"].run_forever())
    await eventually(lambda: aris["a"].connected, timeout=2)
    second = asyncio.create_task(sessions["b"].run_forever())
    try:
        await asyncio.sleep(FAST.ttl)
        assert not aris["b"].connected
        assert not sessions["b"].held
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        assert store.released == ["a"]
        await eventually(lambda: aris["b"].connected, timeout=1)
    finally:
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)


async def test_the_lease_table_has_one_holder_until_its_row_expires(db: Database) -> None:
    store = PgLeaseStore(db)
    assert await store.acquire("ast1", "a", 0.5)
    assert not await store.acquire("ast1", "b", 0.5)
    assert await store.acquire("ast1", "a", 0.5)  # renewal
    assert await store.acquire("ast2", "b", 0.5)  # another Asterisk, another lease
    assert await store.holder("ast1") == "a"
    await eventually(lambda: store.acquire("ast1", "b", 0.5), timeout=2, what="takeover")
    assert not await store.acquire("ast1", "a", 0.5)  # the old holder cannot renew
    assert await store.holder("ast1") == "b"
    await store.release("ast1", "a")  # not the holder: nothing happens
    assert await store.holder("ast1") == "b"
    await store.release("ast1", "b")
    assert await store.holder("ast1") is None
