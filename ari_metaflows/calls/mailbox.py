"""A call's event queue: unbounded, many producers on the loop, one consumer (the call task).

Not ``asyncio.Queue``: that carries three deques and an ``Event`` per instance (bounded queues,
``join()``, several consumers), about 2 KiB per call, which the memory target per tracked leg
(SPEC §8) cannot spare for features a call never uses.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """Never blocks; wakes the consumer if it waits."""
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def put_back(self, items: Iterable[T]) -> None:
        """Put ``items`` (taken out earlier, oldest first) back before everything queued."""
        self._items.extendleft(reversed(list(items)))
        waiter = self._waiter
        if self._items and waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> T:
        """The oldest item; IndexError when empty."""
        return self._items.popleft()

    async def get(self) -> T:
        """The oldest item, waiting for one. One consumer at a time."""
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("a mailbox has one consumer")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()
