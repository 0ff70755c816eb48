"""A loop-lag watchdog: a task that sleeps 1 ms in a loop and records the worst overshoot.

Issue 17: no document and no digit stream may stall the event loop more than 20 ms; tests run
the hostile input inside ``watch_loop()`` and assert on ``max_busy_ms``: the CPU time the loop's
thread spent between two ticks, i.e. how long some callback held the loop. The wall-clock
overshoot (``max_lag_ms``) is recorded too, but on a shared machine the OS may pause the whole
process, which is no stall of ours.

The objects alive before the watch are frozen out of the garbage collector (``gc.freeze``):
the test process's own heap (pytest, hypothesis, every test module) would make any full
collection take tens of ms, which says nothing about the code under test; what that code
allocates is still collected as usual.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

MAX_STALL_MS = 20.0


@dataclass
class LoopWatch:
    max_lag_ms: float = 0.0
    max_busy_ms: float = 0.0
    ticks: int = 0


@asynccontextmanager
async def watch_loop(interval_s: float = 0.001) -> AsyncIterator[LoopWatch]:
    watch = LoopWatch()

    async def tick() -> None:
        while True:
            before = time.perf_counter()
            cpu_before = time.thread_time()
            await asyncio.sleep(interval_s)
            lag_ms = (time.perf_counter() - before - interval_s) * 1000
            busy_ms = (time.thread_time() - cpu_before) * 1000
            watch.max_lag_ms = max(watch.max_lag_ms, lag_ms)
            watch.max_busy_ms = max(watch.max_busy_ms, busy_ms)
            watch.ticks += 1

    gc.collect()
    gc.freeze()
    task = asyncio.create_task(tick())
    await asyncio.sleep(interval_s * 2)  # the first tick is running
    try:
        yield watch
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        gc.unfreeze()
