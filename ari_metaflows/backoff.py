"""The one retry policy for every "try again later" in the service.

``Backoff`` is an explicit, immutable value (like ``httpx.Timeout``): the first delay, the
longest, the growth factor and the jitter. Every retrying part takes one: ARI reconnects, the
wait for the database at start (migrations), the metaflow change listener, the audit and
recordings writers, and a leg whose metaflows could not be resolved. A part that retries asks
the policy for ``delays()``: its own run of delays, which it ``reset()``s after a success.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays of ``initial`` seconds, times ``multiplier`` after each failure, never above
    ``maximum``; each spread by ± ``jitter`` (a fraction) so that many waiters do not retry in
    step. The spread never goes above ``maximum`` either: ``maximum`` bounds every delay."""

    initial: float
    maximum: float
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(f"need 0 < initial <= maximum, got {self.initial}, {self.maximum}")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    def spread(self, nominal: float) -> float:
        """``nominal`` with jitter applied, within ``[nominal·(1-jitter), maximum]``."""
        low = nominal * (1 - self.jitter)
        high = min(nominal * (1 + self.jitter), self.maximum)
        return random.uniform(low, high)

    def delays(self) -> Delays:
        """A fresh run of delays under this policy (one per retrying part)."""
        return Delays(self)


class Delays:
    """One part's run of retries: ``next_delay()`` after each failure, ``reset()`` after a
    success."""

    __slots__ = ("_nominal", "policy")

    def __init__(self, policy: Backoff) -> None:
        self.policy = policy
        self._nominal = policy.initial

    def next_delay(self) -> float:
        """The delay to wait now; the following one grows (capped)."""
        policy = self.policy
        delay = policy.spread(self._nominal)
        self._nominal = min(self._nominal * policy.multiplier, policy.maximum)
        return delay

    def reset(self) -> None:
        self._nominal = self.policy.initial
