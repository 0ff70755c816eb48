"""One gate for the relay requests of all calls (calls/relay.py ``RelayGate``): a digit storm
keeps a bounded number of requests in flight, batches what waits, and drops what went stale."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from ari_metaflows.calls.relay import Relay, RelayGate
from ari_metaflows.testing.eventually import eventually

from .test_relay_lanes import Asterisk


async def test_many_calls_share_a_bounded_number_of_requests_in_flight() -> None:
    asterisk = Asterisk(delays=[0.02] * 1000)
    gate = RelayGate(limit=4)
    relays = [Relay(f"c{n}", lambda: asterisk, gate=gate) for n in range(40)]
    now = time.perf_counter()
    for relay in relays:
        for digit in "123":
            relay.send(f"{relay.call_id}-bob", digit, 100, now)
    await eventually(lambda: all(relay.idle for relay in relays))
    assert asterisk.most_in_flight == 4
    # Every digit arrived, in order, per receiving channel.
    for relay in relays:
        heard = "".join(d for c, d, _ in asterisk.sent if c == f"{relay.call_id}-bob")
        assert heard == "123"
    assert sum(relay.sent for relay in relays) == 120


async def test_digits_that_queue_behind_a_full_gate_leave_together() -> None:
    asterisk = Asterisk(delays=[0.1] + [0.0] * 10)
    gate = RelayGate(limit=1)
    busy = Relay("busy", lambda: asterisk, gate=gate)
    waiting = Relay("waiting", lambda: asterisk, gate=gate)
    now = time.perf_counter()
    busy.send("alice", "9", 100, now)  # holds the only turn for 0.1 s
    await asyncio.sleep(0.01)
    for digit in "12345":
        waiting.send("bob", digit, 100, time.perf_counter())
    await eventually(lambda: busy.idle and waiting.idle)
    assert asterisk.sent == [("alice", "9", 100), ("bob", "12345", 100)]


async def test_a_digit_that_waited_too_long_is_dropped_not_played_late(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="ari_metaflows.calls.relay")
    asterisk = Asterisk(delays=[0.3, 0.0, 0.3])
    gate = RelayGate(limit=1, stale_after=0.1)
    busy = Relay("busy", lambda: asterisk, gate=gate)
    waiting = Relay("waiting", lambda: asterisk, gate=gate)
    busy.send("alice", "9", 100, time.perf_counter())
    await asyncio.sleep(0.01)
    waiting.send("bob", "1", 100, time.perf_counter())  # stale when its turn comes
    await eventually(lambda: busy.idle and waiting.idle)
    assert asterisk.sent == [("alice", "9", 100)]
    assert waiting.dropped == 1
    waiting.send("bob", "2", 100, time.perf_counter())  # the lane goes on
    await eventually(lambda: waiting.idle)
    assert asterisk.sent[-1] == ("bob", "2", 100)
    # Stale again: counted, but only the first time is a warning (a storm must not flood logs).
    busy.send("alice", "8", 100, time.perf_counter())
    await asyncio.sleep(0.01)
    waiting.send("bob", "3", 100, time.perf_counter())
    await eventually(lambda: busy.idle and waiting.idle)
    assert waiting.stale == 2
    assert waiting.dropped == 2
    stale_logs = [r for r in caplog.records if "waited over" in r.getMessage()]
    assert [r.levelno for r in stale_logs] == [logging.WARNING, logging.DEBUG]
    assert all("call waiting" in r.getMessage() for r in stale_logs)


async def test_closing_a_call_waiting_for_its_turn_gives_the_turn_back() -> None:
    asterisk = Asterisk(delays=[0.2, 0.0])
    gate = RelayGate(limit=1)
    busy = Relay("busy", lambda: asterisk, gate=gate)
    waiting = Relay("waiting", lambda: asterisk, gate=gate)
    busy.send("alice", "9", 100, time.perf_counter())
    await asyncio.sleep(0.01)
    waiting.send("bob", "1", 100, time.perf_counter())
    await asyncio.sleep(0.01)
    await waiting.close()  # cancelled while waiting for a turn
    assert waiting.dropped == 1
    await eventually(lambda: busy.idle)
    busy.send("alice", "8", 100, time.perf_counter())  # the gate still has its one turn
    await eventually(lambda: busy.idle)
    assert [d for _, d, _ in asterisk.sent] == ["9", "8"]


@pytest.mark.parametrize(("limit", "stale"), [(0, 1.0), (-1, 1.0), (1, 0.0), (1, -2.0)])
def test_a_gate_without_turns_or_with_no_patience_is_refused(limit: int, stale: float) -> None:
    with pytest.raises(ValueError, match="relay gate"):
        RelayGate(limit=limit, stale_after=stale)
