"""Write-behind for recording rows: the call never waits for the database, and nothing is lost.

``submit`` appends the whole row to a local journal file (one JSON object per line) and hands it
to a writer task, which upserts rows into PostgreSQL and retries with the writers' Backoff while
the database is down (the writer task, retries, flush and close are the shared ``WriteBehind``).
The file is emptied once every row in it is stored; a service that stops with rows still
pending replays the file when it starts again. Rows carry a growing ``version`` and
the upsert never overwrites a newer one, so a replay is harmless. Lines are flushed to the OS at
once (they survive a crash of the process, not a power cut: no fsync on the call path).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import IO, Any

from ..backoff import Backoff
from ..errors import DatastoreUnavailable
from ..writebehind import WRITER_RETRY, WriteBehind, read_json_lines
from .model import Recording
from .store import RecordingStore

logger = logging.getLogger(__name__)


BATCH = 100  # rows per round trip to the database
LINGER = 0.2  # seconds a lone row may wait for company (as the audit trail's rows)

Entry = tuple[str, dict[str, Any]]  # (recording id, the row as journalled)


class RecordingJournal(WriteBehind[list[Entry]]):
    name = "recordings journal"

    def __init__(self, store: RecordingStore, path: Path, retry: Backoff = WRITER_RETRY) -> None:
        super().__init__(retry)
        self.store = store
        self.path = path
        self._pending: dict[str, dict[str, Any]] = {}
        self._file: IO[str] | None = None
        self.writes = 0
        self.linger = LINGER

    @property
    def rejected_path(self) -> Path:
        return self.path.with_suffix(".rejected")

    @property
    def pending(self) -> int:
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
        self._wake_writer()

    def forget(self, recording_id: str) -> None:
        """The row was deleted through the API: never write it again, not even after a restart."""
        if self._pending.pop(recording_id, None) is not None:
            self._append({"deleted": recording_id})
        if not self._pending:
            self._set_idle()

    # -- WriteBehind hooks -----------------------------------------------------------------

    def _load(self) -> None:
        """Replay the journal a previous run left, then keep appending to it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        read_json_lines(self.path, "recordings journal", self._replay)
        self._file = self.path.open("a", encoding="utf-8")
        if self._pending:
            logger.info(
                "recordings journal: %d row(s) from %s still to store", self.pending, self.path
            )

    def _replay(self, entry: Any) -> None:
        if "deleted" in entry:
            self._pending.pop(str(entry["deleted"]), None)
        else:
            Recording.from_journal(entry)  # reject what could never be stored
            self._pending[str(entry["id"])] = entry

    async def _before_drain(self) -> None:
        if len(self._pending) < BATCH:
            await asyncio.sleep(self.linger)  # let a few more rows come

    def _next_unit(self) -> list[Entry] | None:
        """Up to BATCH pending rows: a burst of recordings starting or ending (calls of a busy
        system) costs one round trip to the database, not one per row (issue 20)."""
        if not self._pending:
            return None
        batch = []
        for item in self._pending.items():
            batch.append(item)
            if len(batch) == BATCH:
                break
        return batch

    async def _store(self, unit: list[Entry]) -> bool:
        if len(unit) > 1:
            try:
                await self.store.upsert_many([Recording.from_journal(e) for _, e in unit])
                return True
            except DatastoreUnavailable:
                raise
            except Exception:
                logger.warning("recordings journal: a batch was refused; storing rows one by one")
        stored = False
        for entry in unit:
            stored = await self._store_one(entry) or stored
        return stored

    async def _store_one(self, unit: Entry) -> bool:
        recording_id, entry = unit
        try:
            await self.store.upsert(Recording.from_journal(entry))
        except DatastoreUnavailable:
            raise
        except Exception:
            # A row the database refuses for good: set it aside instead of retrying forever
            # or dropping it silently.
            logger.exception(
                "recordings journal: row %s refused; kept in %s", recording_id, self.rejected_path
            )
            with self.rejected_path.open("a", encoding="utf-8") as rejected:
                rejected.write(json.dumps(entry) + "\n")
            self._pending.pop(recording_id, None)
            return False
        return True

    def _stored(self, unit: list[Entry]) -> None:
        for recording_id, entry in unit:
            self.writes += 1
            if self._pending.get(recording_id) is entry:
                del self._pending[recording_id]

    def _drained(self) -> None:
        """Everything in the file is stored: start it afresh."""
        if self._file is not None and not self._pending:
            self._file.truncate(0)
            self._file.seek(0)

    def _closed(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._pending:
            logger.warning(
                "recordings journal: %d row(s) not yet stored stay in %s for the next start",
                len(self._pending),
                self.path,
            )
