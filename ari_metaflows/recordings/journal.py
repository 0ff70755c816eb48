"""Write-behind for recording rows: the call never waits for the database, and nothing is lost.

``submit`` appends the whole row to a local journal file (one JSON object per line) and hands it
to a writer task, which upserts rows into PostgreSQL and retries with capped backoff while the
database is down. The file is emptied once every row in it is stored; a service that stops with
rows still pending replays the file when it starts again. Rows carry a growing ``version`` and
the upsert never overwrites a newer one, so a replay is harmless. Lines are flushed to the OS at
once (they survive a crash of the process, not a power cut: no fsync on the call path).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..backoff import Backoff
from ..errors import DatastoreUnavailable
from .model import Recording
from .store import RecordingStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JournalTimeouts:
    """Retry delays while the database is down (seconds)."""

    retry_initial: float = 0.2
    retry_max: float = 5.0


class RecordingJournal:
    def __init__(
        self, store: RecordingStore, path: Path, timeouts: JournalTimeouts | None = None
    ) -> None:
        self.store = store
        self.path = path
        self.timeouts = timeouts or JournalTimeouts()
        self._pending: dict[str, dict[str, Any]] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._file: IO[str] | None = None
        self._task: asyncio.Task[None] | None = None
        self.writes = 0
        self.failed_attempts = 0

    @property
    def rejected_path(self) -> Path:
        return self.path.with_suffix(".rejected")

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replayed = self._replay()
        self._file = self.path.open("a", encoding="utf-8")
        if replayed:
            logger.info("recordings journal: %d row(s) from %s still to store", replayed, self.path)
            self._wake.set()
            self._idle.clear()
        self._task = asyncio.create_task(self._writer(), name="recordings-journal")

    def _replay(self) -> int:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return 0
        for number, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line)
                if "deleted" in entry:
                    self._pending.pop(str(entry["deleted"]), None)
                else:
                    Recording.from_journal(entry)  # reject what could never be stored
                    self._pending[str(entry["id"])] = entry
            except (ValueError, TypeError, KeyError) as exc:
                logger.warning(
                    "recordings journal %s:%d unreadable, skipped: %s", self.path, number, exc
                )
        return len(self._pending)

    def _append(self, entry: dict[str, Any]) -> None:
        if self._file is None:
            raise RuntimeError("the recordings journal is not started")
        self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._file.flush()

    def submit(self, recording: Recording) -> None:
        """Record the row's current state; returns at once."""
        entry = recording.to_journal()
        self._append(entry)
        self._pending[recording.id] = entry
        self._idle.clear()
        self._wake.set()

    def forget(self, recording_id: str) -> None:
        """The row was deleted through the API: never write it again, not even after a restart."""
        if self._pending.pop(recording_id, None) is not None:
            self._append({"deleted": recording_id})
        if not self._pending:
            self._idle.set()

    async def flush(self, timeout: float) -> bool:
        """Wait until every submitted row is stored; False if that took longer than timeout."""
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
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._pending:
            logger.warning(
                "recordings journal: %d row(s) not yet stored stay in %s for the next start",
                len(self._pending),
                self.path,
            )

    async def _writer(self) -> None:
        backoff = Backoff(self.timeouts.retry_initial, self.timeouts.retry_max)
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                recording_id, entry = next(iter(self._pending.items()))
                try:
                    await self.store.upsert(Recording.from_journal(entry))
                except DatastoreUnavailable:
                    self.failed_attempts += 1
                    delay = backoff.next_delay()
                    logger.warning(
                        "recordings journal: database unavailable, %d row(s) wait; retry in %.1f s",
                        len(self._pending),
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                except Exception:
                    # A row the database refuses for good: set it aside instead of retrying
                    # forever or dropping it silently.
                    logger.exception(
                        "recordings journal: row %s refused; kept in %s",
                        recording_id,
                        self.rejected_path,
                    )
                    with self.rejected_path.open("a", encoding="utf-8") as rejected:
                        rejected.write(json.dumps(entry) + "\n")
                    self._pending.pop(recording_id, None)
                    continue
                backoff.reset()
                self.writes += 1
                if self._pending.get(recording_id) is entry:
                    del self._pending[recording_id]
            self._compact()
            self._idle.set()

    def _compact(self) -> None:
        """Everything in the file is stored: start it afresh."""
        if self._file is not None and not self._pending:
            self._file.truncate(0)
            self._file.seek(0)
