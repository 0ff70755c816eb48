"""Relaying digits the bridge absorbed (SPEC §5.6): one ordered lane per receiving channel.

A leg whose digits a collector listens to joins its bridge with ``absorbDTMF``; the call then
decides, digit by digit, what the other members should hear and hands it to ``Relay.send``.
Each receiving channel has one lane: a queue drained by one small task that sends a digit with
``POST /channels/{id}/dtmf`` and waits for Asterisk's answer before sending the next. Asterisk
answers before it plays the digits and plays a channel's requests in order, so a later digit
never overtakes an earlier one, even while requests are in flight or slow. Digits that queued up
meanwhile (a replayed code, a fast burst) leave together in one request when their durations
agree: one request per digit would cost Asterisk and the service a round trip each.

All calls of an engine share one ``RelayGate``: at most ``limit`` relay requests in flight at
once, well under the HTTP pool, so a digit storm can neither starve call control of connections
nor park thousands of half-built requests in the pool's queue (each a few dozen objects that
live long enough to reach the collector's oldest generation, and whose wait counted against the
request timeout). A lane waits for its turn holding only its queued digits, and takes all that
queued meanwhile when its turn comes: the busier Asterisk is, the fewer requests per digit.
A digit that waited longer than ``stale_after`` would be heard out of place: it is dropped.

A lane is the relay's own state, not the call's: ``send`` only appends and may be called from
the call's task or a flow of the call (an attended transfer) alike. A channel that is gone
(404) drops what its lane still holds, quietly; a digit Asterisk refuses is logged and dropped,
and the lane goes on; an unreachable Asterisk (a timeout) also drops what queued behind it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import AriError, AriUnavailable, Gone
from ..metrics import Metrics

logger = logging.getLogger(__name__)

DEFAULT_DURATION_MS = 100  # ARI's default, when an event carries no usable duration
MAX_DURATION_MS = 5000
MAX_BATCH = 64  # digits in one request (a replayed code, at most 34 digits, fits)


RELAY_LIMIT = 64  # relay requests in flight at once, all calls (the ARI pool and Asterisk's
# http.conf sessionlimit hold 100: a third stays free for call control)
RELAY_STALE = 5.0  # seconds (the ARI request timeout): older digits are no longer relayed


class RelayGate:
    """Turns for relay requests, shared by all calls of an engine (see the module docstring)."""

    def __init__(self, limit: int = RELAY_LIMIT, stale_after: float = RELAY_STALE) -> None:
        if limit < 1 or stale_after <= 0:
            raise ValueError("a relay gate needs limit >= 1 and stale_after > 0")
        self.limit = limit
        self.stale_after = stale_after
        self.turns = asyncio.Semaphore(limit)


class DtmfSender(Protocol):
    async def send_dtmf(self, channel_id: str, digits: str, duration_ms: int) -> None: ...


def duration_of(raw: object) -> int:
    """The ``duration_ms`` of a ChannelDtmfReceived, bounded (bad input gets the default)."""
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        return DEFAULT_DURATION_MS
    return min(raw, MAX_DURATION_MS)


@dataclass(slots=True)
class _Lane:
    queue: deque[tuple[str, int, float]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class Relay:
    """The relay lanes of one call."""

    def __init__(
        self,
        call_id: str,
        sender: Callable[[], DtmfSender | None],
        metrics: Metrics | None = None,
        gate: RelayGate | None = None,
    ) -> None:
        self.call_id = call_id
        self._sender = sender
        self._metrics = metrics  # its ``relay`` histogram is read at each request
        self._gate = gate or RelayGate()
        self._lanes: dict[str, _Lane] = {}
        self.sent = 0  # requests Asterisk accepted
        self.dropped = 0  # digits dropped: gone, refused, unreachable, stale, the call ended
        self.stale = 0  # of which: waited too long for a turn

    def send(self, channel_id: str, digit: str, duration_ms: int, since: float) -> None:
        """Queue ``digit`` for ``channel_id``'s far end; ``since`` (perf_counter) is when the
        digit was decided on, for the relay-delay histogram."""
        lane = self._lanes.get(channel_id)
        if lane is None:
            lane = self._lanes[channel_id] = _Lane()
        lane.queue.append((digit, duration_ms, since))
        if lane.task is None:
            # A fresh context: a flow's dispatch timer must not count the relay's requests.
            lane.task = asyncio.create_task(
                self._drain(channel_id, lane),
                name=f"relay-{self.call_id}",
                context=contextvars.Context(),
            )

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing in flight."""
        return not self._lanes

    async def _drain(self, channel_id: str, lane: _Lane) -> None:
        queue = lane.queue
        try:
            while queue:
                async with self._gate.turns:
                    await self._send_batch(channel_id, queue)
        finally:
            lane.task = None
            if not queue and self._lanes.get(channel_id) is lane:
                del self._lanes[channel_id]

    async def _send_batch(self, channel_id: str, queue: deque[tuple[str, int, float]]) -> None:
        """Send what leads the queue (digits of one duration, at most MAX_BATCH) in one request."""
        now = time.perf_counter()
        stale = 0
        while queue and now - queue[0][2] > self._gate.stale_after:
            queue.popleft()
            stale += 1
        if stale:
            # Once per call at warning level: a storm must not flood the log.
            log = logger.debug if self.stale else logger.warning
            self.stale += stale
            self.dropped += stale
            log(
                "call %s: %d digit(s) for %s waited over %.1f s; not relayed",
                self.call_id,
                stale,
                channel_id,
                self._gate.stale_after,
            )
        if not queue:
            return
        digits, duration_ms, since = queue.popleft()
        sinces = [since]
        while queue and queue[0][1] == duration_ms and len(digits) < MAX_BATCH:
            digit, _, since = queue.popleft()
            digits += digit
            sinces.append(since)
        sender = self._sender()
        if sender is None:
            self.dropped += len(digits)
            logger.info("call %s: Asterisk unavailable; digits not relayed", self.call_id)
            return
        metrics = self._metrics
        if metrics is not None:
            metrics.relay_requests += 1
            for since in sinces:
                metrics.relay.observe(now - since)
        try:
            await sender.send_dtmf(channel_id, digits, duration_ms)
        except Gone:
            self.dropped += len(digits) + len(queue)
            queue.clear()
            logger.debug("call %s: %s is gone; relay dropped", self.call_id, channel_id)
        except (AriError, AriUnavailable) as exc:
            # Refused: drop these digits, go on. Unreachable (a timeout): what queued
            # meanwhile would arrive seconds late, out of place; drop it too.
            late = len(queue) if isinstance(exc, AriUnavailable) else 0
            self.dropped += len(digits) + late
            if late:
                queue.clear()
            logger.warning(
                "call %s: relaying %s to %s failed: %s",
                self.call_id,
                digits,
                channel_id,
                exc,
            )
        else:
            self.sent += len(digits)

    async def close(self) -> None:
        """The call ended: nothing more is relayed; wait for the lanes' tasks to stop."""
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for lane in self._lanes.values():
            self.dropped += len(lane.queue)
            lane.queue.clear()
        self._lanes.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


__all__ = [
    "DEFAULT_DURATION_MS",
    "RELAY_LIMIT",
    "RELAY_STALE",
    "Relay",
    "RelayGate",
    "duration_of",
]
