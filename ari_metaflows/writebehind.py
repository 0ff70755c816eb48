"""Write-behind: the caller hands rows over and returns at once; a writer task stores them.

Shared by the audit trail (``audit/trail.py``) and the recordings journal
(``recordings/journal.py``). The common part lives here: the writer task woken by new rows,
the retry with the one ``Backoff`` policy while the database is unavailable, ``flush(timeout)``,
``stop`` / ``close``, and reading a JSON-lines file (the audit spill file, the recordings
journal) back at start. Each subclass keeps its own buffer shape and what a stored row, a
refused row and the file mean for it, through five small hooks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from .backoff import Backoff
from .errors import DatastoreUnavailable

logger = logging.getLogger(__name__)

WRITER_RETRY = Backoff(initial=0.2, maximum=5.0)

Unit = TypeVar("Unit")  # what one store attempt writes: a batch of rows, one row…


def read_json_lines(path: Path, what: str, apply: Callable[[Any], None]) -> bool:
    """Call ``apply`` with each JSON line of ``path``; a line that does not parse, or that
    ``apply`` rejects (ValueError, TypeError, KeyError), is logged and skipped. False if there
    is no such file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return False
    for number, line in enumerate(lines, start=1):
        try:
            apply(json.loads(line))
        except (ValueError, TypeError, KeyError) as exc:
            logger.warning("%s %s:%d unreadable, skipped: %s", what, path, number, exc)
    return True


class WriteBehind(Generic[Unit]):
    """The writer task and its retries. Subclasses implement the hooks below; they call
    ``_wake_writer()`` after buffering something and ``_set_idle()`` when nothing is left."""

    name = "write-behind"  # for logs and the task's name

    def __init__(self, retry: Backoff = WRITER_RETRY) -> None:
        self.retry = retry
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.failed_attempts = 0  # stores that met an unavailable database

    # -- hooks -----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Rows not yet stored."""
        raise NotImplementedError

    def _load(self) -> None:
        """At start: take back what a previous run left in its file."""

    async def _before_drain(self) -> None:
        """Woken: a moment to let more rows come before writing (the audit trail lingers)."""

    def _next_unit(self) -> Unit | None:
        """What to store next, or None when nothing is left."""
        raise NotImplementedError

    async def _store(self, unit: Unit) -> bool:
        """Store ``unit`` (True), or handle a refusal itself (set aside, split, drop and count)
        and answer False; raise DatastoreUnavailable to have it retried after a delay."""
        raise NotImplementedError

    def _stored(self, unit: Unit) -> None:
        """``unit`` is stored: take it off the buffer (unless it changed meanwhile)."""
        raise NotImplementedError

    def _drained(self) -> None:
        """Everything is stored (e.g. empty the journal file)."""

    def _closed(self) -> None:
        """The writer has stopped: keep what is still pending for the next start."""

    # -- the common part -------------------------------------------------------------------

    async def start(self) -> None:
        self._load()
        if self.pending:
            self._wake_writer()
        self._task = asyncio.create_task(self._writer(), name=self.name.replace(" ", "-"))

    def _wake_writer(self) -> None:
        self._idle.clear()
        self._wake.set()

    def _set_idle(self) -> None:
        self._idle.set()

    async def flush(self, timeout: float) -> bool:
        """Wait until every row handed over is stored; False if that took longer than timeout."""
        if self.pending:
            self._wake.set()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop the writer; what is not stored is kept (``_closed``). Safe to call twice."""
        task, self._task = self._task, None
        try:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        finally:
            self._closed()

    async def stop(self, timeout: float = 2.0) -> None:
        """The service is stopping: give pending rows ``timeout`` seconds, then close."""
        try:
            await self.flush(timeout)
        finally:
            await self.close()

    async def _writer(self) -> None:
        delays = self.retry.delays()
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._before_drain()
            while (unit := self._next_unit()) is not None:
                try:
                    stored = await self._store(unit)
                except DatastoreUnavailable:
                    self.failed_attempts += 1
                    delay = delays.next_delay()
                    logger.warning(
                        "%s: database unavailable, %d row(s) wait; retry in %.1f s",
                        self.name,
                        self.pending,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                if stored:
                    delays.reset()
                    self._stored(unit)
            self._drained()
            self._idle.set()
