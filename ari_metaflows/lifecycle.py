"""Start things in order, undo them in reverse — always, and report every failure to undo.

``Lifecycle`` is the one start/stop discipline of the service (``app.open_service``, ``serve``,
the tests' service helper and the benchmark all go through it). Each step that has started
registers how to undo it; ``aclose()`` undoes every registered step, last first, even when some
of them fail, and even when the task is cancelled meanwhile (cancellation is re-raised once all
steps ran). How failures are reported:

- Stopping normally: every failure is logged (with its traceback) as it happens, then all of
  them are raised together as one ``TeardownError`` (an ``ExceptionGroup``; each failure carries
  a note naming its step).
- A start that fails part-way (``async with`` body or ``undo_after`` raising): what started is
  undone the same way and the *start's* exception propagates unchanged, so the caller can say
  what went wrong in one line; failures to undo are logged and added to it as notes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

logger = logging.getLogger(__name__)

Undo = Callable[[], Awaitable[object]]


class StartupError(Exception):
    """The service could not start; the message is one line for the operator."""


class TeardownError(ExceptionGroup[Exception]):
    """Some steps failed to stop; every failure is inside (and was logged)."""


class Lifecycle:
    """Steps that started, undone in reverse by ``aclose()`` (or on leaving ``async with``)."""

    def __init__(self, name: str = "service") -> None:
        self.name = name
        self._steps: list[tuple[str, Undo]] = []
        self.undone: list[str] = []  # the steps undone so far, in the order they were undone

    def push(self, step: str, undo: Undo) -> None:
        """``step`` has started; ``undo`` stops it."""
        self._steps.append((step, undo))

    def __len__(self) -> int:
        return len(self._steps)

    async def aclose(self) -> None:
        """Undo every step, last first; raise ``TeardownError`` with every failure."""
        errors = await self._unwind()
        if errors:
            raise TeardownError(f"{self.name}: {len(errors)} step(s) failed to stop", errors)

    async def undo_after(self, failure: BaseException) -> None:
        """A later step failed with ``failure``: undo what started; ``failure`` gets a note
        for each step that failed to stop. The caller re-raises ``failure``."""
        for error in await self._unwind():
            failure.add_note(f"also failed while undoing the start: {error!r}")

    async def _unwind(self) -> list[Exception]:
        errors: list[Exception] = []
        cancelled: asyncio.CancelledError | None = None
        while self._steps:
            step, undo = self._steps.pop()
            try:
                await undo()
            except asyncio.CancelledError as exc:
                # Keep stopping the rest; re-raise once everything had its turn.
                cancelled = cancelled or exc
            except Exception as exc:
                logger.error("%s: stopping %s failed", self.name, step, exc_info=exc)
                exc.add_note(f"while stopping {step}")
                errors.append(exc)
            self.undone.append(step)
        if cancelled is not None:
            raise cancelled
        return errors

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.aclose()
        else:
            await self.undo_after(exc)
