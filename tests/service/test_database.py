"""The connection pool against a real PostgreSQL: a released connection costs no second round
trip, yet nothing one user left open reaches the next."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from ari_metaflows.app import migrate
from ari_metaflows.db.database import Database, DatabaseTimeouts
from ari_metaflows.db.migrate import MIGRATION_LOCK_KEY
from ari_metaflows.errors import DatastoreUnavailable
from ari_metaflows.testing.eventually import eventually


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.open(max_size=1)  # one connection: each use gets the same one back
    try:
        yield database
    finally:
        await database.close()


async def _backends(database_url: str) -> int:
    """Sessions on the test's database other than the one asking."""
    conn = await asyncpg.connect(database_url)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return int(count)


async def test_a_released_connection_sends_no_reset_statement(db: Database) -> None:
    seen: list[str] = []
    async with db.connection() as conn:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        conn.add_query_logger(lambda record: seen.append(record.query))
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT pg_backend_pid()") == pid  # the same session
    # asyncpg's default would have sent RESET ALL, UNLISTEN *, pg_advisory_unlock_all() …
    assert seen == ["SELECT pg_backend_pid()"]


async def test_a_transaction_left_open_is_still_rolled_back(db: Database) -> None:
    """What the reset must keep doing: asyncpg rolls back (and reports) a transaction that a
    user of the pool failed to end."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        async with db.connection() as conn:
            await conn.execute("CREATE TABLE scratch (n integer)")
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO scratch VALUES (1)")
    finally:
        loop.set_exception_handler(previous)
    assert any("active transaction" in str(c.get("message")) for c in reported)
    async with db.connection() as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT count(*) FROM scratch") == 0


async def test_migrations_leave_no_session_behind(db: Database, database_url: str) -> None:
    """Their advisory lock is taken on a connection of their own, closed afterwards: on a
    pooled one, with no reset, a lock a failure left behind would block every other
    instance's start-up for good."""
    assert await migrate(db) == []  # the template database is migrated already
    await eventually(lambda: _backends(database_url), lambda n: n == 0, what="no session left")


async def test_a_dedicated_connection_takes_its_session_state_along(
    db: Database, database_url: str
) -> None:
    async with db.dedicated() as conn:
        await conn.execute("SELECT pg_advisory_lock(4242)")
    conn = await asyncpg.connect(database_url)
    try:
        # Free again: the session that held it is gone.
        assert await conn.fetchval("SELECT pg_try_advisory_lock(4242)") is True
    finally:
        await conn.close()


async def test_a_dedicated_connection_to_nowhere_is_datastore_unavailable() -> None:
    database = Database("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(DatastoreUnavailable):
        async with database.dedicated():
            pass


async def test_a_dedicated_connection_lost_midway_is_datastore_unavailable(db: Database) -> None:
    async def use_a_broken_link() -> None:
        async with db.dedicated() as conn:
            conn.terminate()  # the link breaks under the body
            await conn.execute("SELECT 1")

    with pytest.raises(DatastoreUnavailable):
        await use_a_broken_link()


async def test_migrations_wait_for_another_instance_longer_than_a_statement(
    database_url: str,
) -> None:
    """Another instance migrating holds the lock longer than the service's statement bound:
    this one waits its turn instead of failing its start-up as "database unavailable"."""
    db = Database(database_url, timeouts=DatabaseTimeouts(command=0.2))
    await db.open(max_size=1)
    other = await asyncpg.connect(database_url)
    try:
        await other.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        waiting = asyncio.create_task(migrate(db))
        await asyncio.sleep(0.6)  # three statement bounds
        assert not waiting.done()
        await other.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        assert await asyncio.wait_for(waiting, 5) == []
    finally:
        await other.close()
        await db.close()
