"""Capped exponential backoff with jitter: one rule for every "try again later" in the service
(ARI reconnects, audit and recordings writes while the database is down, a leg's metaflows)."""

from __future__ import annotations

import random


class Backoff:
    """Delays ``initial``, doubling up to ``maximum``, each spread by ± ``jitter`` (a fraction)
    so that many waiters do not retry in step. ``reset()`` after a success."""

    __slots__ = ("_nominal", "initial", "jitter", "maximum")

    def __init__(self, initial: float, maximum: float, jitter: float = 0.2) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._nominal = initial

    def next_delay(self) -> float:
        """The delay to wait now; the following one doubles (capped)."""
        delay = self._nominal * random.uniform(1 - self.jitter, 1 + self.jitter)
        self._nominal = min(self._nominal * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._nominal = self.initial
