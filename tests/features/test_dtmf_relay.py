"""Hold-back and relay: what may be a code never reaches the other party (SPEC §5.6, issue 15).

Scenarios run on the simulator or a real Asterisk (ARI_URL); fault injection (refused or slow
relays) needs the simulator. Alice (the caller) owns the metaflows: ``*9`` plays a beep, ``*2…``
is a pattern that waits for the digit timeout, ``*5`` is no code at all.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from ari_metaflows.audit import EventStore
from ari_metaflows.audit.store import EventFilter
from ari_metaflows.db.database import Database
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.sim import KeyTiming
from ari_metaflows.testing.eventually import eventually
from ari_metaflows.testing.scenario import Driver

from ..helpers.engine_service import (
    ACCOUNT,
    FAST,
    Service,
    connected_call,
    requests_to,
    sim_only,
    start_service,
    stop_service,
    the_call,
)

TIMEOUT_MS = 800  # the default digit timeout
SETTLE = 0.4  # long enough for any relay in flight to have been played


async def alice_doc(service: Service, **fields: Any) -> None:
    await service.document(
        Owner.user(ACCOUNT, "u-alice"),
        numbers={"9": {"module": "play", "data": {"id": "beep"}}},
        patterns={"2(\\d+)": {"module": "play", "data": {"id": "beep"}}},
        **fields,
    )


async def heard(phone: Any, expected: str, timeout: float = 3.0) -> None:
    await eventually(phone.heard_dtmf, lambda got: got == expected, timeout=timeout)


def absorb_flags(service: Service) -> list[str]:
    return [q.get("absorbDTMF", "") for q in requests_to(service, "/addChannel")]


async def test_a_code_is_never_heard_by_the_other_party(service: Service) -> None:
    await alice_doc(service)
    alice, bob = await connected_call(service)
    await alice.press("*9", FAST)
    (match,) = await service.wait_matches(1)
    assert match["key"] == "9"
    await bob.wait_hears("playback", "sound:beep")
    await asyncio.sleep(SETTLE)
    assert await bob.heard_dtmf() == ""
    if requests_to(service, "/addChannel"):
        # alice's digits are listened to (absorbed), bob's are not (Asterisk passes them).
        assert sorted(absorb_flags(service)) == ["false", "true"]


async def test_digits_that_cannot_start_a_code_are_relayed_at_once_in_order(
    service: Service,
) -> None:
    await alice_doc(service)
    alice, bob = await connected_call(service)
    await alice.press("1234#", FAST)
    # Relayed as pressed, not held for a digit timeout: bob hears the first digits within a
    # digit timeout of the last press (a real Asterisk then plays the rest out over ~0.5 s).
    await eventually(bob.heard_dtmf, lambda got: got.startswith("12"), timeout=TIMEOUT_MS / 1000)
    await heard(bob, "1234#")
    # bob's digits nobody listens to: Asterisk's own pass-through, nothing relayed.
    await bob.press("7", FAST)
    await heard(alice, "7")
    assert not [q for q in requests_to(service, "/dtmf") if q.get("dtmf") == "7"]


async def test_a_no_match_is_replayed_after_the_timeout_in_order(
    service: Service, db: Database
) -> None:
    await alice_doc(service)
    alice, bob = await connected_call(service)
    await alice.press("1", FAST)
    await heard(bob, "1")
    loop = asyncio.get_running_loop()
    await alice.press("*5", FAST)
    pressed = loop.time()
    await asyncio.sleep(TIMEOUT_MS / 1000 / 2)
    assert await bob.heard_dtmf() == "1"  # held while the code may still come
    await heard(bob, "1*5")
    assert loop.time() - pressed >= TIMEOUT_MS / 1000 * 0.9
    await alice.press("3", FAST)
    await heard(bob, "1*53")
    # Pressed right after the timeout: the replay may still be in flight, order holds.
    await alice.press("*5", FAST)
    await asyncio.sleep(TIMEOUT_MS / 1000 + 0.02)
    await alice.press("4", KeyTiming(duration_ms=40, gap_ms=0))
    await heard(bob, "1*53*54")
    # The audit trail says what became of the digits.
    await eventually(lambda: service.audit.stored, lambda stored: stored >= 2)
    page = await EventStore(db).page(ACCOUNT, EventFilter(call_id=the_call(service).id))
    rows = [(e.collected, e.outcome, e.digits) for e in page.events]
    assert rows == [("5", "no_match", "replayed"), ("5", "no_match", "replayed")]


async def test_a_match_after_held_digits_drops_them(service: Service, db: Database) -> None:
    await alice_doc(service)
    alice, bob = await connected_call(service)
    await alice.press("*21", FAST)  # a pattern: waits for the timeout, then matches
    await service.wait_matches(1)
    await bob.wait_hears("playback", "sound:beep")
    await alice.press("6", FAST)
    await heard(bob, "6")
    await eventually(lambda: service.audit.stored, lambda stored: stored >= 1)
    page = await EventStore(db).page(ACCOUNT, EventFilter(call_id=the_call(service).id))
    assert [(e.collected, e.digits) for e in page.events] == [("21", "dropped")]


async def test_dtmf_passthrough_keeps_kazoos_behaviour(service: Service) -> None:
    await alice_doc(service, dtmf_passthrough=True)
    alice, bob = await connected_call(service)
    await alice.press("*9", FAST)
    await service.wait_matches(1)
    await heard(bob, "*9")  # heard as pressed, and the code still runs
    await alice.press("*5", FAST)
    await heard(bob, "*9*5", timeout=TIMEOUT_MS / 1000 / 2)  # before the timeout: not held
    assert set(absorb_flags(service)) <= {"false"}
    assert not requests_to(service, "/dtmf")


async def test_a_user_turning_passthrough_off_overrides_the_account(service: Service) -> None:
    await service.document(Owner.account(ACCOUNT), dtmf_passthrough=True)
    await alice_doc(service, dtmf_passthrough=False)
    alice, bob = await connected_call(service)
    await alice.press("*9", FAST)
    await service.wait_matches(1)
    await asyncio.sleep(SETTLE)
    assert await bob.heard_dtmf() == ""


async def test_listen_on_peer_absorbs_the_other_partys_digits(service: Service) -> None:
    await alice_doc(service, listen_on="peer")
    alice, bob = await connected_call(service)
    await bob.press("*9", FAST)  # alice's code, pressed by bob
    await service.wait_matches(1)
    await bob.press("1", FAST)
    await heard(alice, "1")
    await asyncio.sleep(SETTLE)
    assert await alice.heard_dtmf() == "1"
    await alice.press("8", FAST)  # alice's own digits: nobody listens, Asterisk passes them
    await heard(bob, "8")


# -- faults (simulator) -------------------------------------------------------------------------


async def test_a_refused_relay_is_logged_and_the_lane_goes_on(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    core = sim_only(service.driver).sim.core
    await alice_doc(service)
    alice, bob = await connected_call(service)
    bob_channel = the_call(service).legs["callee"].channel_id
    refused = ("POST", f"/ari/channels/{bob_channel}/dtmf")
    core.garbled[refused] = (500, '{"message": "Internal Server Error"}')
    with caplog.at_level(logging.WARNING, logger="ari_metaflows.calls.relay"):
        await alice.press("12", FAST)
        await eventually(
            lambda: "".join(q["dtmf"] for q in requests_to(service, "/dtmf")),
            lambda sent: sent == "12",
            timeout=2,
        )
        await eventually(lambda: caplog.text, lambda text: text.count("failed: ") >= 1)
    assert "500" in caplog.text
    del core.garbled[refused]
    await alice.press("3", FAST)
    await heard(bob, "3")
    assert the_call(service).phase == "connected"


async def test_the_other_party_hanging_up_mid_relay_drops_it_quietly(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    core = sim_only(service.driver).sim.core
    await alice_doc(service)
    alice, bob = await connected_call(service)
    bob_channel = the_call(service).legs["callee"].channel_id
    core.delays[("POST", f"/ari/channels/{bob_channel}/dtmf")] = [0.3]
    with caplog.at_level(logging.WARNING):
        await alice.press("12", KeyTiming(duration_ms=40, gap_ms=0))
        await eventually(lambda: requests_to(service, "/dtmf"), lambda sent: len(sent) >= 1)
        await bob.hangup()
        await alice.wait_idle()
        await service.wait_no_calls()
    assert await bob.heard_dtmf() == ""
    assert not [r for r in caplog.records if r.name == "ari_metaflows.calls.relay"]


async def test_order_is_kept_while_relays_are_in_flight(service: Service) -> None:
    core = sim_only(service.driver).sim.core
    await alice_doc(service)
    alice, bob = await connected_call(service)
    bob_channel = the_call(service).legs["callee"].channel_id
    # The first relay is slow: a later digit sent alongside it would overtake it.
    core.delays[("POST", f"/ari/channels/{bob_channel}/dtmf")] = [0.4, 0.0, 0.2, 0.0]
    await alice.press("1234", KeyTiming(duration_ms=40, gap_ms=10))
    await heard(bob, "1234")
    sent = [q["dtmf"] for q in requests_to(service, f"/channels/{bob_channel}/dtmf")]
    assert "".join(sent) == "1234"
    assert len(sent) < 4  # what queued behind the slow one left together
    durations = {q["duration"] for q in requests_to(service, f"/channels/{bob_channel}/dtmf")}
    assert durations == {"40"}  # the duration_ms each digit's event carried


# -- hold and attended transfer -----------------------------------------------------------------


async def test_the_unhold_key_and_codes_on_hold_reach_nobody(service: Service) -> None:
    await service.document(
        Owner.user(ACCOUNT, "u-alice"),
        numbers={"5": {"module": "hold"}, "9": {"module": "play", "data": {"id": "beep"}}},
    )
    alice, bob = await connected_call(service)
    await alice.press("*5", FAST)
    await bob.wait_hears("moh")
    await alice.press("7", FAST)  # alice is out of the bridge: nobody hears her
    await alice.press("1", FAST)  # the unhold key
    await bob.wait_hears("party", "alice")
    await alice.press("2", FAST)  # back in the bridge, absorbed again: relayed
    await heard(bob, "2")
    await asyncio.sleep(SETTLE)
    assert await bob.heard_dtmf() == "2"
    if requests_to(service, "/addChannel"):
        assert absorb_flags(service)[-1] == "true"  # the resume re-added alice absorbed


async def test_takeback_digits_never_reach_the_transfer_target(service: Service) -> None:
    await service.document(
        Owner.user(ACCOUNT, "u-alice"),
        numbers={
            "4": {"module": "transfer", "data": {"target": "1234", "transfer_type": "attended"}}
        },
    )
    alice, bob = await connected_call(service)
    carol = service.driver.add_phone("1234")
    await alice.press("*4", FAST)
    await service.wait_matches(1)
    await alice.wait_hears("ringing")
    await carol.answer()
    await alice.wait_hears("party", "1234")
    await alice.press("7*8", FAST)  # not the takeback (*1): carol hears all of it
    await heard(carol, "7*8")
    await alice.press("**1", FAST)  # the first * cannot be part of the takeback
    await carol.wait_idle()
    await alice.wait_hears("party", "bob")
    assert await carol.heard_dtmf() == "7*8*"
    assert await bob.heard_dtmf() == ""


async def test_a_call_adopted_after_a_restart_relays_again(
    driver: Driver, database_url: str, db: Database, tmp_path: Path
) -> None:
    """Asterisk keeps absorbing the legs across our restart: the adopting service adds them
    again with absorbDTMF, so it knows to relay."""
    sim_only(driver)
    journal = tmp_path / "journal.jsonl"
    first = await start_service(driver, database_url, db, journal)
    await first.document(
        Owner.account(ACCOUNT), numbers={"9": {"module": "play", "data": {"id": "beep"}}}
    )
    alice, bob = await connected_call(first)
    await stop_service(first)
    second = await start_service(driver, database_url, db, journal)
    try:
        await eventually(
            lambda: requests_to(second, "/addChannel"),
            lambda adds: [q["absorbDTMF"] for q in adds][-1:] == ["true"] and len(adds) >= 2,
        )
        await alice.press("1*9", FAST)
        await second.wait_matches(1)
        await heard(bob, "1")
        await bob.wait_hears("playback", "sound:beep")
        await asyncio.sleep(SETTLE)
        assert await bob.heard_dtmf() == "1"
        await alice.hangup()
        await bob.wait_idle()
    finally:
        await stop_service(second)
