"""Write-behind for the audit trail: ``record`` appends to memory; a writer stores batches.

The DTMF path only appends to a deque. The writer inserts up to ``batch`` rows per
transaction, at once when a batch is full and otherwise after ``linger`` seconds, and retries
with the writers' Backoff while the database is down (the writer task, retries, flush and
close are the shared ``WriteBehind``). Rows wait in memory up to ``max_buffered``;
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
from typing import Any

from ..backoff import Backoff
from ..errors import DatastoreUnavailable
from ..writebehind import WRITER_RETRY, WriteBehind, read_json_lines
from .model import MetaflowEvent
from .store import EventStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrailLimits:
    batch: int = 500
    linger: float = 0.2  # seconds a lone row may wait for company
    max_buffered: int = 100_000


class AuditTrail(WriteBehind[list[MetaflowEvent]]):
    name = "audit trail"

    def __init__(
        self,
        store: EventStore,
        spill_path: Path | None,
        limits: TrailLimits | None = None,
        retry: Backoff = WRITER_RETRY,
    ) -> None:
        super().__init__(retry)
        self.store = store
        self.spill_path = spill_path
        self.limits = limits or TrailLimits()
        self._buffer: deque[MetaflowEvent] = deque()
        self.stored = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._buffer)

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
        self._wake_writer()

    # -- WriteBehind hooks -----------------------------------------------------------------

    async def _before_drain(self) -> None:
        if len(self._buffer) < self.limits.batch:
            await asyncio.sleep(self.limits.linger)  # let a few more rows come

    def _next_unit(self) -> list[MetaflowEvent] | None:
        if not self._buffer:
            return None
        return [self._buffer[i] for i in range(min(self.limits.batch, len(self._buffer)))]

    async def _store(self, batch: list[MetaflowEvent]) -> bool:
        try:
            await self.store.insert(batch)
        except DatastoreUnavailable:
            raise
        except Exception:
            logger.exception("audit trail: a batch was refused; storing its rows one by one")
            # DatastoreUnavailable here: the whole batch again later (inserts are idempotent).
            await self._one_by_one(batch)
        return True

    def _stored(self, batch: list[MetaflowEvent]) -> None:
        self.stored += len(batch)
        # Rows dropped from the left while we awaited are not in the buffer any more.
        for event in batch:
            if self._buffer and self._buffer[0] is event:
                self._buffer.popleft()

    async def _one_by_one(self, batch: list[MetaflowEvent]) -> None:
        for event in batch:
            try:
                await self.store.insert([event])
            except DatastoreUnavailable:
                raise
            except Exception:
                logger.exception("audit trail: row %s refused for good; dropped", event.id)
                self.dropped += 1

    def _load(self) -> None:
        """Rows a previous run could not store: read back, and the spill file removed."""
        if self.spill_path is None:
            return
        if not read_json_lines(self.spill_path, "audit spill", self._unspill):
            return
        self.spill_path.unlink()
        if self._buffer:
            logger.info(
                "audit trail: %d row(s) from the last run still to store", len(self._buffer)
            )

    def _unspill(self, line: Any) -> None:
        self._buffer.append(MetaflowEvent.from_spill(line))

    def _closed(self) -> None:
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
