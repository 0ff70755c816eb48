"""The relay lanes on their own (calls/relay.py): order, batching, gone and refused channels."""

from __future__ import annotations

import asyncio
import time

import pytest

from ari_metaflows.calls.relay import DEFAULT_DURATION_MS, MAX_DURATION_MS, Relay, duration_of
from ari_metaflows.errors import AriError, AriUnavailable, Gone
from ari_metaflows.metrics import Metrics
from ari_metaflows.testing.eventually import eventually


class Asterisk:
    """Answers each request after ``delays`` (in order), or raises what ``errors`` says."""

    def __init__(self, delays: list[float] | None = None) -> None:
        self.delays = delays or []
        self.errors: dict[str, Exception] = {}
        self.sent: list[tuple[str, str, int]] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def send_dtmf(self, channel_id: str, digits: str, duration_ms: int) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delays.pop(0) if self.delays else 0)
            error = self.errors.get(channel_id)
            if error is not None:
                raise error
            self.sent.append((channel_id, digits, duration_ms))
        finally:
            self.in_flight -= 1


async def test_a_slow_request_is_never_overtaken_and_queued_digits_leave_together() -> None:
    asterisk = Asterisk(delays=[0.2])
    metrics = Metrics()
    relay = Relay("c1", lambda: asterisk, metrics)
    now = time.perf_counter()
    relay.send("bob", "1", 100, now)
    await asyncio.sleep(0.01)
    for digit in "234":
        relay.send("bob", digit, 100, now)
    relay.send("bob", "5", 250, now)  # another duration: its own request
    relay.send("carol", "9", 100, now)  # another lane: not held up by bob's
    await eventually(lambda: relay.idle)
    bob = [(d, ms) for c, d, ms in asterisk.sent if c == "bob"]
    assert bob == [("1", 100), ("234", 100), ("5", 250)]
    assert asterisk.sent[0] == ("carol", "9", 100)
    assert relay.sent == 6
    assert metrics.relay.samples == 6
    assert metrics.relay_requests == 4


async def test_a_gone_channel_drops_its_lane_quietly_and_a_refusal_goes_on() -> None:
    asterisk = Asterisk(delays=[0.05])
    asterisk.errors["bob"] = Gone(404, "Channel not found")
    asterisk.errors["carol"] = AriError(500, "Internal Server Error")
    relay = Relay("c1", lambda: asterisk)
    now = time.perf_counter()
    relay.send("bob", "1", 100, now)
    relay.send("carol", "1", 100, now)
    await asyncio.sleep(0.01)
    relay.send("bob", "2", 100, now)
    relay.send("carol", "2", 80, now)
    await eventually(lambda: relay.idle)
    assert asterisk.sent == []
    assert relay.dropped == 4
    del asterisk.errors["carol"]
    relay.send("carol", "3", 100, now)
    await eventually(lambda: relay.idle)
    assert asterisk.sent == [("carol", "3", 100)]


async def test_closing_cancels_what_is_in_flight() -> None:
    asterisk = Asterisk(delays=[10.0])
    relay = Relay("c1", lambda: asterisk)
    relay.send("bob", "1", 100, time.perf_counter())
    relay.send("bob", "2", 90, time.perf_counter())
    await asyncio.sleep(0.01)
    await relay.close()
    assert relay.idle
    assert asterisk.in_flight == 0
    assert relay.dropped == 1


async def test_without_asterisk_digits_are_dropped() -> None:
    relay = Relay("c1", lambda: None)
    relay.send("bob", "1", 100, time.perf_counter())
    await eventually(lambda: relay.idle)
    assert relay.dropped == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (60, 60),
        (None, DEFAULT_DURATION_MS),
        ("100", DEFAULT_DURATION_MS),
        (True, 100),
        (-5, DEFAULT_DURATION_MS),
        (10**9, MAX_DURATION_MS),
    ],
)
def test_event_durations_are_bounded(raw: object, expected: int) -> None:
    assert duration_of(raw) == expected


async def test_a_timeout_drops_what_queued_behind_it() -> None:
    asterisk = Asterisk(delays=[0.05])
    asterisk.errors["bob"] = AriUnavailable("channels.sendDTMF: TimeoutError")
    relay = Relay("c1", lambda: asterisk)
    relay.send("bob", "1", 100, time.perf_counter())
    await asyncio.sleep(0.01)
    relay.send("bob", "2", 90, time.perf_counter())
    await eventually(lambda: relay.idle)
    assert relay.dropped == 2
    del asterisk.errors["bob"]
    relay.send("bob", "3", 100, time.perf_counter())
    await eventually(lambda: relay.idle)
    assert asterisk.sent == [("bob", "3", 100)]
