"""The connection pool, with every connection failure turned into ``DatastoreUnavailable``.

Callers never see asyncpg's many connection exception types: a database that is down, refusing
connections or too slow is one error, which the API maps to 503.

Pooled connections carry no session state: no ``SET``, ``LISTEN`` or advisory lock is ever
taken on one (the LISTEN loops connect on their own, db/listener.py; the migrations' lock
takes ``dedicated``). So a released connection skips asyncpg's reset statement (``RESET ALL``,
``UNLISTEN *``, ``pg_advisory_unlock_all()`` …), a second round trip for every use that cost
as much as the statement itself; asyncpg still rolls back a transaction left open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from ..errors import DatastoreUnavailable

logger = logging.getLogger(__name__)

# What callers get: a pooled connection (or, for one-off tools, a plain one).
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
)


@dataclass(frozen=True)
class DatabaseTimeouts:
    """How long to wait for a pooled connection, and for one statement."""

    acquire: float = 3.0
    command: float = 5.0


@contextmanager
def _unreachable_is_unavailable() -> Iterator[None]:
    """Every way of not reaching the database becomes one ``DatastoreUnavailable``."""
    try:
        yield
    except CONNECTION_ERRORS as exc:
        logger.warning("database unavailable: %s", type(exc).__name__)
        raise DatastoreUnavailable() from exc


async def _no_session_state(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """The pool's reset: nothing to undo (see the module docstring)."""


async def _close(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Close gracefully. When that fails asyncpg aborts the connection, and the server drops
    the session and whatever it held; the failure must not hide the body's own error."""
    try:
        await conn.close(timeout=1.0)
    except Exception as exc:
        logger.debug("closing a dedicated connection failed: %s", type(exc).__name__)


class Database:
    def __init__(self, url: str, *, timeouts: DatabaseTimeouts | None = None) -> None:
        self.url = url
        self.timeouts = timeouts or DatabaseTimeouts()
        self._pool: asyncpg.Pool | None = None

    async def open(self, *, max_size: int = 10) -> None:
        # min_size=0: the pool opens even while the database is down; requests then get 503
        # until it is back, instead of the process refusing to start.
        self._pool = await asyncpg.create_pool(
            self.url,
            min_size=0,
            max_size=max_size,
            command_timeout=self.timeouts.command,
            reset=_no_session_state,
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        if self._pool is None:
            raise DatastoreUnavailable("the database pool is not open")
        with _unreachable_is_unavailable():
            async with self._pool.acquire(timeout=self.timeouts.acquire) as conn:
                yield conn

    @asynccontextmanager
    async def dedicated(self, *, command_timeout: float | None = None) -> AsyncIterator[Connection]:
        """A connection of its own, closed after use: for session state (an advisory lock)
        that must never reach a pooled connection. ``command_timeout`` (default: the pool's)
        bounds each statement."""
        with _unreachable_is_unavailable():
            conn = await asyncpg.connect(
                self.url,
                timeout=self.timeouts.acquire,
                command_timeout=command_timeout or self.timeouts.command,
            )
            try:
                yield conn
            finally:
                await _close(conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def ping(self) -> bool:
        try:
            async with self.connection() as conn:
                await conn.fetchval("SELECT 1", timeout=self.timeouts.acquire)
        except DatastoreUnavailable:
            return False
        return True
