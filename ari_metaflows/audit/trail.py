"""Write-behind for the audit trail: ``record`` appends to memory; a writer stores batches.

The DTMF path only appends to a deque. The writer inserts up to ``batch`` rows per
transaction, at once when a batch is full and otherwise after ``linger`` seconds, and retries
with capped backoff while the database is down. Rows wait in memory up to ``max_buffered``;
beyond that the oldest are dropped and counted (an outage long enough to fill it is logged).
On shutdown whatever could not be stored goes to a spill file, read back on the next start.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from ..backoff import Backoff
from ..errors import DatastoreUnavailable
from .model import MetaflowEvent
from .store import EventStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrailLimits:
    batch: int = 500
    linger: float = 0.2  # seconds a lone row may wait for company
    max_buffered: int = 100_000
    retry_initial: float = 0.2
    retry_max: float = 5.0


class AuditTrail:
    def __init__(
        self, store: EventStore, spill_path: Path | None, limits: TrailLimits | None = None
    ) -> None:
        self.store = store
        self.spill_path = spill_path
        self.limits = limits or TrailLimits()
        self._buffer: deque[MetaflowEvent] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.stored = 0
        self.dropped = 0
        self.failed_attempts = 0

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def start(self) -> None:
        self._read_spill()
        self._task = asyncio.create_task(self._writer(), name="audit-trail")
        if self._buffer:
            self._idle.clear()
            self._wake.set()

    def record(self, event: MetaflowEvent) -> None:
        """Queue one execution; returns at once (called on the call's task)."""
        if len(self._buffer) >= self.limits.max_buffered:
            self._buffer.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                logger.error(
                    "audit trail: buffer full (%d rows) while the database is away; "
                    "%d oldest row(s) dropped so far",
                    self.limits.max_buffered,
                    self.dropped,
                )
        self._buffer.append(event)
        self._idle.clear()
        self._wake.set()

    async def flush(self, timeout: float) -> bool:
        """Wait until every recorded row is stored; False if that took longer than timeout."""
        self._wake.set()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._write_spill()

    async def _writer(self) -> None:
        backoff = Backoff(self.limits.retry_initial, self.limits.retry_max)
        while True:
            await self._wake.wait()
            self._wake.clear()
            if len(self._buffer) < self.limits.batch:
                await asyncio.sleep(self.limits.linger)  # let a few more rows come
            while self._buffer:
                batch = [self._buffer[i] for i in range(min(self.limits.batch, len(self._buffer)))]
                try:
                    await self.store.insert(batch)
                except DatastoreUnavailable:
                    self.failed_attempts += 1
                    delay = backoff.next_delay()
                    logger.warning(
                        "audit trail: database unavailable, %d row(s) wait; retry in %.1f s",
                        len(self._buffer),
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                except Exception:
                    logger.exception(
                        "audit trail: a batch was refused; storing its rows one by one"
                    )
                    try:
                        await self._one_by_one(batch)
                    except DatastoreUnavailable:
                        continue  # the whole batch again later: inserts are idempotent
                backoff.reset()
                self.stored += len(batch)
                # Rows dropped from the left while we awaited are not in the buffer any more.
                for event in batch:
                    if self._buffer and self._buffer[0] is event:
                        self._buffer.popleft()
            self._idle.set()

    async def _one_by_one(self, batch: list[MetaflowEvent]) -> None:
        for event in batch:
            try:
                await self.store.insert([event])
            except DatastoreUnavailable:
                raise
            except Exception:
                logger.exception("audit trail: row %s refused for good; dropped", event.id)
                self.dropped += 1

    def _read_spill(self) -> None:
        if self.spill_path is None or not self.spill_path.exists():
            return
        lines = self.spill_path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            try:
                self._buffer.append(MetaflowEvent.from_spill(json.loads(line)))
            except (ValueError, TypeError, KeyError) as exc:
                logger.warning(
                    "audit spill %s:%d unreadable, skipped: %s", self.spill_path, number, exc
                )
        self.spill_path.unlink()
        if self._buffer:
            logger.info(
                "audit trail: %d row(s) from the last run still to store", len(self._buffer)
            )

    def _write_spill(self) -> None:
        if not self._buffer:
            return
        if self.spill_path is None:
            logger.error("audit trail: %d row(s) not stored and no spill file", len(self._buffer))
            return
        self.spill_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spill_path.open("a", encoding="utf-8") as spill:
            for event in self._buffer:
                spill.write(json.dumps(event.to_spill(), separators=(",", ":")) + "\n")
        logger.warning(
            "audit trail: %d row(s) not yet stored kept in %s for the next start",
            len(self._buffer),
            self.spill_path,
        )
        self._buffer.clear()
