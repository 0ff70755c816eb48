"""``eventually()``: the one way tests and the scenario harness wait for state with no event.

It re-asks a probe until its answer is good, and on timeout fails with the last answer (or the
last exception) in the message, so a red test says what it saw instead of ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

_NOTHING = object()


@overload
async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], object] | None = None,
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
    retry_on: tuple[type[Exception], ...] = (AssertionError,),
    what: str | None = None,
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T],
    until: Callable[[T], object] | None = None,
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
    retry_on: tuple[type[Exception], ...] = (AssertionError,),
    what: str | None = None,
) -> T: ...


async def eventually(
    probe: Callable[[], Any],
    until: Callable[[Any], object] | None = None,
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
    retry_on: tuple[type[Exception], ...] = (AssertionError,),
    what: str | None = None,
) -> Any:
    """Call ``probe`` (sync or async) until ``until(answer)`` (default: the answer itself) is
    true, and return that answer.

    An exception listed in ``retry_on`` counts as "not yet"; any other one propagates at once.
    After ``timeout`` seconds an ``AssertionError`` names ``what`` (default: the probe) and shows
    the last answer or exception. One async probe that hangs fails the same way (it gets what
    is left of the timeout, at least a second).
    """
    good = until if until is not None else bool
    name = what or getattr(probe, "__qualname__", repr(probe))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: object = _NOTHING
    last_error: Exception | None = None
    while True:
        bound: asyncio.Timeout | None = None
        try:
            answer = probe()
            if inspect.isawaitable(answer):
                bound = asyncio.timeout(max(deadline - loop.time(), 1.0))
                async with bound:
                    answer = await answer
        except Exception as exc:
            if bound is not None and bound.expired():
                raise AssertionError(f"{name}: the probe hung past {timeout:g}s") from None
            if not isinstance(exc, retry_on):
                raise
            last_error = exc
        else:
            last, last_error = answer, None
            if good(answer):
                return answer
        if loop.time() >= deadline:
            if last_error is not None:
                seen = f"last error: {type(last_error).__name__}: {last_error}"
            else:
                seen = f"last value: {last!r}"
            raise AssertionError(f"{name}: still not true after {timeout:g}s ({seen})") from (
                last_error
            )
        await asyncio.sleep(interval)
