"""Exactly one instance holds each Asterisk's ARI connection: a lease row per Asterisk.

A holder renews its row (``expires_at = now + TTL`` in the database's clock) every
``RENEW_EVERY`` seconds. It keeps a local deadline: the (monotonic) time it *sent* its last
successful renewal + TTL - MARGIN. The database computed the expiry after that send, so the
local deadline comes at least MARGIN seconds before anyone else may take the row. Past its
deadline without a renewal (database lost, stalled, or the row taken) the holder drops its ARI
connection and only then goes back to standby: no split brain even when the database is
unreachable. Standbys try to take the row with the ``LEASE_RETRY`` Backoff policy.

Timing with the defaults (TTL 3 s, renew every 1 s, margin 1 s, standby retry ≤ 0.5 s): a holder
killed with SIGKILL renewed at most 1 s before dying, its row expires 2-3 s after its death and a
standby takes it within 0.5 s more; then ARI connects and resynchronises (well under a second on
one network): under 5 s in all. A holder that stops cleanly deletes its row: the takeover is
then immediate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from ..backoff import Backoff
from ..db.database import Database
from ..errors import DatastoreUnavailable

logger = logging.getLogger(__name__)

LEASE_RETRY = Backoff(initial=0.25, maximum=0.5)


@dataclass(frozen=True)
class LeaseTiming:
    ttl: float = 3.0  # the row's lifetime after each renewal (database clock)
    renew_every: float = 1.0
    margin: float = 1.0  # the holder drops ARI this long before the row can expire

    def __post_init__(self) -> None:
        if not 0 < self.renew_every < self.ttl - self.margin or self.margin <= 0:
            raise ValueError("need 0 < renew_every < ttl - margin and margin > 0")


class LeaseStore(Protocol):
    async def acquire(self, asterisk: str, holder: str, ttl: float) -> bool:
        """Take or renew the lease (True) unless another holder's row has not expired."""
        ...

    async def release(self, asterisk: str, holder: str) -> None: ...


class PgLeaseStore:
    """The ``asterisk_leases`` table (migration 0007)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def acquire(self, asterisk: str, holder: str, ttl: float) -> bool:
        async with self.db.connection() as conn:
            row = await conn.fetchval(
                """
                INSERT INTO asterisk_leases AS l (asterisk, holder, expires_at)
                VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
                ON CONFLICT (asterisk) DO UPDATE
                    SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
                        acquired_at = CASE WHEN l.holder = EXCLUDED.holder
                                           THEN l.acquired_at ELSE clock_timestamp() END
                    WHERE l.holder = EXCLUDED.holder OR l.expires_at < clock_timestamp()
                RETURNING holder
                """,
                asterisk,
                holder,
                ttl,
                timeout=ttl,
            )
        return row is not None

    async def release(self, asterisk: str, holder: str) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                "DELETE FROM asterisk_leases WHERE asterisk = $1 AND holder = $2",
                asterisk,
                holder,
                timeout=1.0,
            )

    async def holder(self, asterisk: str) -> str | None:
        """Who holds ``asterisk`` now (None: nobody, or an expired row)."""
        async with self.db.connection() as conn:
            value = await conn.fetchval(
                "SELECT holder FROM asterisk_leases "
                "WHERE asterisk = $1 AND expires_at > clock_timestamp()",
                asterisk,
            )
        return None if value is None else str(value)


Session = Callable[[], Coroutine[Any, Any, None]]  # runs the ARI connection until cancelled


class LeasedSession:
    """Run ``session`` (the Asterisk's ARI connection) only while holding its lease.

    ``on_acquired`` runs after the lease is taken and before ARI connects (take over the rows
    of a previous holder); ``on_dropped`` runs after ARI is dropped (forget the calls: another
    instance adopts them)."""

    def __init__(
        self,
        asterisk: str,
        holder: str,
        store: LeaseStore,
        session: Session,
        *,
        on_acquired: Callable[[], Awaitable[None]] | None = None,
        on_dropped: Callable[[], Awaitable[None]] | None = None,
        timing: LeaseTiming | None = None,
        retry: Backoff = LEASE_RETRY,
    ) -> None:
        self.asterisk = asterisk
        self.holder = holder
        self.store = store
        self._session = session
        self._on_acquired = on_acquired
        self._on_dropped = on_dropped
        self.timing = timing or LeaseTiming()
        self.retry = retry
        self.held = False
        self.acquisitions = 0

    async def run_forever(self) -> None:
        try:
            while True:
                deadline = await self._acquire()
                await self._hold(deadline)
        finally:
            if self.held:  # cancelled while holding: _hold's cleanup already ran
                self.held = False

    async def _try(self) -> bool:
        """One attempt, bounded (a stalled database is a failed attempt)."""
        try:
            async with asyncio.timeout(self.timing.ttl):
                return await self.store.acquire(self.asterisk, self.holder, self.timing.ttl)
        except (DatastoreUnavailable, TimeoutError, OSError) as exc:
            logger.debug("lease %s: %s", self.asterisk, type(exc).__name__)
            return False

    async def _acquire(self) -> float:
        """Wait for the lease; answers the local deadline of the first renewal."""
        loop = asyncio.get_running_loop()
        delays = self.retry.delays()
        while True:
            sent = loop.time()
            if await self._try():
                return sent + self.timing.ttl - self.timing.margin
            await asyncio.sleep(delays.next_delay())

    async def _hold(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        timing = self.timing
        self.held = True
        self.acquisitions += 1
        logger.info("lease %s: held by %s; connecting to ARI", self.asterisk, self.holder)
        session: asyncio.Task[None] | None = None
        released = False
        try:
            if self._on_acquired is not None:
                try:
                    async with asyncio.timeout_at(deadline):
                        await self._on_acquired()
                except TimeoutError:
                    logger.warning(
                        "lease %s: taking over took too long; trying again", self.asterisk
                    )
                    return
            session = asyncio.create_task(self._session(), name=f"ari-{self.asterisk}")
            while True:
                next_renewal = min(loop.time() + timing.renew_every, deadline)
                await self._sleep_or_end(session, next_renewal - loop.time())
                if loop.time() >= deadline:
                    logger.error(
                        "lease %s: not renewed in time; dropping the ARI connection",
                        self.asterisk,
                    )
                    return
                sent = loop.time()
                try:
                    async with asyncio.timeout(max(deadline - sent, 0.0)):
                        renewed = await self._try()
                except TimeoutError:
                    renewed = False
                if renewed:
                    deadline = sent + timing.ttl - timing.margin
        except asyncio.CancelledError:
            released = True  # stopping: hand the Asterisk over at once
            raise
        finally:
            # ARI goes first: only then may anyone else hold this Asterisk.
            if session is not None:
                session.cancel()
                await asyncio.gather(session, return_exceptions=True)
            self.held = False
            if self._on_dropped is not None:
                await _quietly(self._on_dropped(), "after dropping ARI")
            if released:
                await _quietly(self.store.release(self.asterisk, self.holder), "release")

    @staticmethod
    async def _sleep_or_end(session: asyncio.Task[None], delay: float) -> None:
        if delay > 0:
            await asyncio.wait({session}, timeout=delay)
        if session.done():  # run_forever never returns: it failed
            session.result()
            raise RuntimeError("the ARI session ended")


async def _quietly(action: Awaitable[None], what: str) -> None:
    try:
        async with asyncio.timeout(1.0):
            await action
    except (Exception, TimeoutError) as exc:
        logger.warning("lease: %s failed: %s", what, type(exc).__name__)
