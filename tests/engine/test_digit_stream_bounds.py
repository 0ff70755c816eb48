"""A hostile digit stream on a live call (issue 17 item 1): documents full of backtracking
patterns on every owner level, codes of 31 and 33 digits pressed again and again; the event
loop is never held more than 20 ms and the call's features keep working."""

from __future__ import annotations

from ari_metaflows.metaflows.store import Owner
from ari_metaflows.sim import KeyTiming

from ..helpers.engine_service import ACCOUNT, Service, connected_call
from ..helpers.loop_watchdog import MAX_STALL_MS, watch_loop

QUICK = KeyTiming(duration_ms=20, gap_ms=10)
PLAY = {"module": "play", "data": {"id": "beep"}}


def backtracking(tag: str) -> dict[str, object]:
    return {f"^1{{6}}(1|11)+2|9{{{1 + i % 32}}}|{tag}{i:03d}": PLAY for i in range(100)}


async def test_a_hostile_digit_stream_never_stalls_the_loop(sim_service: Service) -> None:
    await sim_service.document(
        Owner.account(ACCOUNT), patterns=backtracking("7"), numbers={"5": PLAY}
    )
    await sim_service.document(Owner.user(ACCOUNT, "u-alice"), patterns=backtracking("8"))
    async with watch_loop() as setup:  # the leg's 200 patterns are compiled here
        alice, _bob = await connected_call(sim_service)
    assert setup.max_busy_ms < MAX_STALL_MS, setup
    async with watch_loop() as watch:
        for _ in range(2):
            await alice.press("*" + "1" * 31, QUICK)  # each pattern backtracks on this
            await alice.press("*" + "1" * 33, QUICK)  # too long: ends the attempt
        await alice.press("*5", QUICK)  # a real code still works afterwards
        (match,) = await sim_service.wait_matches(1, timeout=10)
    assert (match["key"], match["module"]) == ("5", "play")
    assert watch.ticks > 100
    assert watch.max_busy_ms < MAX_STALL_MS, watch
