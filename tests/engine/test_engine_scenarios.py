"""The call engine end to end: dial mode, collectors, metaflows, faults (SPEC §2-§6, §8).

The engine runs in-process with a real PostgreSQL against the harness driver — the simulator,
or a real Asterisk when ARI_URL is set (simulator-only checks are skipped there).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ari_metaflows.backoff import Backoff
from ari_metaflows.db.database import Database
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.sim import KeyTiming
from ari_metaflows.sim.dialplan import DialPhone, StasisApp
from ari_metaflows.testing.eventually import eventually
from ari_metaflows.testing.scenario import Driver, SimDriver
from ari_metaflows.testing.scenario import Owner as PhoneOwner

from ..helpers.engine_service import (
    ACCOUNT,
    FAST,
    Service,
    connected_call,
    sim_only,
    start_service,
    stop_service,
    wait_until,
)

# -- dial mode -------------------------------------------------------------------------------


async def test_dial_mode_bridges_both_legs_with_dtmf_events(service: Service) -> None:
    alice, bob = await connected_call(service)
    if isinstance(service.driver, SimDriver):
        requests = service.driver.sim.core.requests
        bridges = [q for m, p, q in requests if m == "POST" and p == "/ari/bridges"]
        assert bridges == [{"type": "mixing,dtmf_events", "bridgeId": bridges[0]["bridgeId"]}]
        # The callee is originated: one request, no create + dial (issue 20).
        call = next(iter(service.engine.calls.values()))
        callee_path = "/ari/channels/" + call.legs["callee"].channel_id
        originates = [q for m, p, q in requests if m == "POST" and p == callee_path]
        assert len(originates) == 1
        assert originates[0]["endpoint"] == "PJSIP/bob"
        assert originates[0]["app"] == "metaflows"
        assert originates[0]["appArgs"] == f"callee,{call.id}"
        assert originates[0]["originator"] == call.legs["caller"].channel_id
        assert int(originates[0]["timeout"]) > call.ring_timeout  # ours decides, not Asterisk's
        assert not [p for _, p, _ in requests if p == "/ari/channels/create" or "/dial" in p]
    await alice.hangup()
    await bob.wait_idle()
    await service.wait_no_calls()


async def test_callee_hanging_up_ends_the_call_cleanly(service: Service) -> None:
    alice, bob = await connected_call(service)
    await bob.hangup()
    await alice.wait_idle()
    await service.wait_no_calls()
    if isinstance(service.driver, SimDriver):
        core = service.driver.sim.core
        await core.wait_for(lambda: not core.channels and not core.bridges)


async def test_busy_callee_sends_the_caller_on_with_dialstatus(service: Service) -> None:
    driver = sim_only(service.driver)
    alice = driver.add_phone("alice")
    bob = driver.add_phone("bob")
    await driver.call(alice, bob)
    channel = alice.phone.channel
    await bob.reject()
    await alice.wait_idle()
    assert channel is not None
    assert channel.variables["METAFLOWS_DIALSTATUS"] == "BUSY"
    assert channel.history[-1] == "(end)"  # continued after Stasis(), then the dialplan ended
    await service.wait_no_calls()


async def test_ring_timeout_gives_noanswer(service: Service) -> None:
    driver = sim_only(service.driver)
    alice = driver.add_phone("alice")
    bob = driver.add_phone("bob")
    await driver.call(alice, bob, ring_timeout=1)
    channel = alice.phone.channel
    await bob.phone.wait_ringing()
    await alice.wait_idle(timeout=5)
    assert channel is not None
    assert channel.variables["METAFLOWS_DIALSTATUS"] == "NOANSWER"
    assert bob.phone.channel is None


async def test_a_rejection_gives_chanunavail_as_dial_would(service: Service) -> None:
    """Asterisk's dialer says NOANSWER for any cause it has no name for (here 21, call
    rejected); Dial() and the app say CHANUNAVAIL, read from the callee's ChannelDestroyed."""
    driver = sim_only(service.driver)
    alice = driver.add_phone("alice")
    bob = driver.add_phone("bob")
    await driver.call(alice, bob)
    channel = alice.phone.channel
    await bob.phone.wait_ringing()
    driver.sim.core.phone_rejects(bob.phone.phone, cause=21)
    await alice.wait_idle(timeout=5)
    assert channel is not None
    assert channel.variables["METAFLOWS_DIALSTATUS"] == "CHANUNAVAIL"
    statuses = [e.get("dialstatus") for e in driver.sim.core.event_log if e.get("type") == "Dial"]
    assert "NOANSWER" in statuses  # what the dialer said, and the app did not take
    await service.wait_no_calls()


async def test_a_forward_is_not_followed_and_rings_nobody(service: Service) -> None:
    """Asterisk's dialer follows a callee's 302 with a channel the app never asked for: it is
    hung up, and the caller goes on with CHANUNAVAIL, as before originating."""
    driver = sim_only(service.driver)
    alice = driver.add_phone("alice")
    bob = driver.add_phone("bob")
    driver.sim.core.phones["bob"].forward_to = "carol"
    carol = driver.add_phone("carol")
    await driver.call(alice, bob)
    channel = alice.phone.channel
    await alice.wait_idle(timeout=5)
    assert channel is not None
    assert channel.variables["METAFLOWS_DIALSTATUS"] == "CHANUNAVAIL"
    await carol.wait_idle(timeout=2)
    forwarded = [e for e in driver.sim.core.event_log if e.get("forwarded")]
    assert len(forwarded) == 1
    assert forwarded[0]["forwarded"]["id"] not in driver.sim.core.channels
    await service.wait_no_calls()


async def test_an_unknown_number_gives_chanunavail(service: Service) -> None:
    driver = sim_only(service.driver)
    alice = driver.add_phone("alice")
    args = ("dial", "Local/nobody@nowhere/n")
    driver.sim.core.dialplan.add("metaflows-test", "nobody", StasisApp(driver.app, args))
    alice.phone.call("nobody", "metaflows-test")
    await driver.sim.core.wait_for(lambda: alice.phone.channel is not None)
    channel = alice.phone.channel
    await alice.wait_idle(timeout=5)
    assert channel is not None
    assert channel.variables["METAFLOWS_DIALSTATUS"] == "CHANUNAVAIL"
    await service.wait_no_calls()


async def test_caller_hanging_up_while_ringing_stops_the_callee(service: Service) -> None:
    driver = sim_only(service.driver)
    alice = driver.add_phone("alice")
    bob = driver.add_phone("bob")
    await driver.call(alice, bob)
    await bob.phone.wait_ringing()
    await alice.hangup()
    await bob.wait_idle()
    await service.wait_no_calls()
    assert not driver.sim.core.channels


# -- codes ------------------------------------------------------------------------------------


async def test_star_nine_runs_at_once_and_plays_to_both(service: Service) -> None:
    await service.document(
        Owner.user(ACCOUNT, "u-alice"),
        numbers={"9": {"module": "play", "data": {"id": "beep"}}},
        patterns={"2(\\d+)": {"module": "hangup"}},
    )
    alice, bob = await connected_call(service)
    loop = asyncio.get_running_loop()
    await alice.press("*9", FAST)
    pressed = loop.time()
    (match,) = await service.wait_matches(1)
    assert loop.time() - pressed < 0.5  # early match: no 800 ms wait
    assert (match["key"], match["module"], match["leg"]) == ("9", "play", "caller")
    await bob.wait_hears("playback", "sound:beep")
    await alice.wait_hears("party", "bob", timeout=3)


async def test_pattern_waits_for_the_timeout_and_captures(service: Service) -> None:
    await service.document(
        Owner.account(ACCOUNT),
        numbers={"9": {"module": "play", "data": {"id": "beep"}}},
        patterns={"2(\\d+)": {"module": "say", "data": {"text": "7", "type": "digits"}}},
    )
    alice, bob = await connected_call(service)
    loop = asyncio.get_running_loop()
    await alice.press("*21234", FAST)
    pressed = loop.time()
    (match,) = await service.wait_matches(1)
    assert loop.time() - pressed >= 0.7  # waited for the 800 ms digit timeout
    assert match["captures"] == ["1234"]
    assert match["collected"] == "21234"
    await bob.wait_hears("playback", "digits:7")


async def test_each_digit_restarts_the_digit_timeout(service: Service) -> None:
    """Digits 660 ms apart, under the 800 ms timeout, make one code, which runs one timeout
    after the last digit: the call's timer follows the latest deadline, never the first."""
    await service.document(
        Owner.account(ACCOUNT),
        patterns={"2(\\d+)": {"module": "say", "data": {"text": "7", "type": "digits"}}},
    )
    alice, bob = await connected_call(service)
    loop = asyncio.get_running_loop()
    await alice.press("*2123", KeyTiming(duration_ms=60, gap_ms=600))
    pressed = loop.time()
    (match,) = await service.wait_matches(1)
    assert loop.time() - pressed >= 0.7
    assert (match["collected"], match["captures"]) == ("2123", ["123"])
    await bob.wait_hears("playback", "digits:7")


async def test_an_idle_call_holds_no_parsed_event(service: Service) -> None:
    """Memory per leg (SPEC §8): the call task lives as long as the call, so its frame must not
    keep the StasisStart or the last event it handled (a full channel snapshot each)."""
    await connected_call(service)
    await asyncio.sleep(0.2)
    (call,) = service.engine.calls.values()
    assert call.task is not None
    frame = call.task.get_coro().cr_frame  # type: ignore[union-attr]
    held = [name for name, value in frame.f_locals.items() if isinstance(value, dict)]
    assert held == []


async def test_no_match_does_nothing(service: Service) -> None:
    await service.document(Owner.account(ACCOUNT), numbers={"9": {"module": "hangup"}})
    alice, _ = await connected_call(service)
    await alice.press("*77", FAST)
    await asyncio.sleep(1.0)
    assert service.matches() == []
    await alice.wait_hears("party", "bob")
    assert len(service.engine.calls) == 1


async def test_listen_on_peer_hears_the_other_party(service: Service) -> None:
    await service.document(
        Owner.user(ACCOUNT, "u-alice"),
        listen_on="peer",
        numbers={"9": {"module": "play", "data": {"id": "beep", "leg": "self"}}},
    )
    alice, bob = await connected_call(service)
    await alice.press("*9", FAST)
    await asyncio.sleep(0.3)
    assert service.matches() == []  # alice's own digits are not listened to
    await bob.press("*9", FAST)
    (match,) = await service.wait_matches(1)
    assert (match["owner"], match["leg"]) == ("caller", "callee")
    await bob.wait_hears("playback", "sound:beep")  # `self` is the presser: bob
    assert (await alice.hears()) in (None, ("party", "bob"))


async def test_two_owners_have_independent_collectors(service: Service) -> None:
    await service.document(
        Owner.user(ACCOUNT, "u-alice"), numbers={"1": {"module": "play", "data": {"id": "a"}}}
    )
    await service.document(Owner.device(ACCOUNT, "bob"), numbers={"2": {"module": "hangup"}})
    alice, bob = await connected_call(service)
    await alice.press("*2", FAST)  # bob's code: not alice's
    await asyncio.sleep(1.0)
    assert service.matches() == []
    await bob.press("*2", FAST)
    (match,) = await service.wait_matches(1)
    assert (match["owner"], match["module"]) == ("callee", "hangup")
    await bob.wait_idle()
    await alice.wait_idle()


async def test_user_over_device_over_account(service: Service) -> None:
    await service.document(Owner.account(ACCOUNT), numbers={"5": {"module": "hangup"}})
    await service.document(Owner.device(ACCOUNT, "alice"), numbers={"5": {"module": "break"}})
    await service.document(
        Owner.user(ACCOUNT, "u-alice"), numbers={"5": {"module": "play", "data": {"id": "x"}}}
    )
    alice, _ = await connected_call(service)
    await alice.press("*5", FAST)
    (match,) = await service.wait_matches(1)
    assert match["module"] == "play"


async def test_a_changed_metaflow_applies_to_the_next_code(service: Service) -> None:
    await service.document(
        Owner.account(ACCOUNT), numbers={"9": {"module": "play", "data": {"id": "beep"}}}
    )
    alice, bob = await connected_call(service)
    await alice.press("*9", FAST)
    await service.wait_matches(1)
    await service.document(Owner.account(ACCOUNT), numbers={"9": {"module": "hangup"}})
    await asyncio.sleep(0.2)
    await alice.press("*9", FAST)
    matches = await service.wait_matches(2)
    assert matches[1]["module"] == "hangup"
    await alice.wait_idle()
    await bob.wait_idle()


async def test_a_leg_without_account_has_no_collector(service: Service, driver: Driver) -> None:
    service.engine.default_account = None
    sim_only(driver)
    await service.document(Owner.account(ACCOUNT), numbers={"9": {"module": "hangup"}})
    alice = driver.add_phone("alice", PhoneOwner())
    bob = driver.add_phone("bob", PhoneOwner())
    await driver.call(alice, bob)
    await bob.answer()
    await alice.wait_hears("party", "bob")
    await alice.press("*9", FAST)
    await asyncio.sleep(0.5)
    assert service.matches() == []


# -- faults -----------------------------------------------------------------------------------


async def reconnect(service: Service) -> None:
    """The simulated Asterisk drops the app's websocket; the service connects again."""
    await sim_only(service.driver).sim.drop_websockets()
    await asyncio.sleep(0.01)
    await asyncio.wait_for(service.ari.connected.wait(), 5)


async def beep_heard(service: Service, alice: Any, bob: Any) -> None:
    """alice presses *9 (a play-beep code) and bob hears it: the call still works."""
    await alice.press("*9", FAST)
    await service.wait_matches(1)
    await bob.wait_hears("playback", "sound:beep")


async def test_codes_work_after_the_websocket_drops_and_returns(service: Service) -> None:
    sim_only(service.driver)
    await service.document(
        Owner.account(ACCOUNT), numbers={"9": {"module": "play", "data": {"id": "beep"}}}
    )
    alice, bob = await connected_call(service)
    await reconnect(service)
    await beep_heard(service, alice, bob)
    assert service.ari.reconnects >= 1


async def test_a_call_that_ended_during_the_gap_is_cleaned_up(service: Service) -> None:
    driver = sim_only(service.driver)
    alice, bob = await connected_call(service)
    service.ari.backoff = Backoff(initial=0.3, maximum=0.3)
    await driver.sim.drop_websockets()
    await bob.hangup()  # nobody hears this
    await asyncio.sleep(0.05)
    assert service.engine.calls  # still believed alive
    await asyncio.wait_for(service.ari.connected.wait(), 5)
    await service.wait_no_calls()
    await alice.wait_idle()  # the engine hung up the orphaned caller
    assert not driver.sim.core.bridges


async def local_callee_call(service: Service) -> tuple[Any, Any, str]:
    """alice calls bob through a Local channel (``Local/bob@phones/n``), as a dialplan that
    routes through a context would; connected. The callee's far half's id."""
    driver = sim_only(service.driver)
    await service.document(
        Owner.account(ACCOUNT), numbers={"9": {"module": "play", "data": {"id": "beep"}}}
    )
    alice = driver.add_phone("alice", PhoneOwner(account=ACCOUNT, user="u-alice"))
    bob = driver.add_phone("bob")
    core = driver.sim.core
    core.dialplan.add("phones", "bob", DialPhone("bob"))
    core.dialplan.add(
        "metaflows-test", "viabob", StasisApp(driver.app, ("dial", "Local/bob@phones/n"))
    )
    alice.phone.call("viabob", "metaflows-test")
    await bob.answer()
    await alice.wait_hears("party", "bob")
    call = await eventually(
        lambda: next(iter(service.engine.calls.values()), None),
        lambda c: c is not None and c.phase.value == "connected",
        what="a connected call",
    )
    assert call is not None
    far = call.legs["callee"].channel_id + ";2"
    assert far in core.application_json(driver.app)["channel_ids"]  # subscribed, as Asterisk does
    return alice, bob, far


async def test_a_local_callees_far_half_survives_a_resync(service: Service) -> None:
    """Asterisk subscribes the app to an originated Local channel's ";2" half: a resync must
    not take it for an orphan and hang it up (which would end the call)."""
    driver = sim_only(service.driver)
    alice, bob, far = await local_callee_call(service)
    await reconnect(service)
    await beep_heard(service, alice, bob)
    assert far in driver.sim.core.channels
    hangups = [p for m, p, _ in driver.sim.core.requests if m == "DELETE"]
    assert not hangups
    await alice.hangup()
    await bob.wait_idle()


async def test_a_local_callee_call_is_adopted_after_a_service_restart(
    driver: Driver, database_url: str, db: Database, tmp_path: Path
) -> None:
    sim = sim_only(driver)
    journal = tmp_path / "journal.jsonl"
    first = await start_service(driver, database_url, db, journal)
    alice, bob, far = await local_callee_call(first)
    await stop_service(first)
    second = await start_service(driver, database_url, db, journal)
    try:
        assert len(second.engine.calls) == 1
        await beep_heard(second, alice, bob)
        assert far in sim.sim.core.channels
        await alice.hangup()
        await bob.wait_idle()
    finally:
        await stop_service(second)


async def test_asterisk_restart_drops_every_call(service: Service) -> None:
    driver = sim_only(service.driver)
    await connected_call(service)
    await driver.sim.restart()
    await asyncio.sleep(0.01)
    await asyncio.wait_for(service.ari.connected.wait(), 5)
    await service.wait_no_calls()


async def test_bad_events_and_digit_storms_break_nothing(service: Service) -> None:
    await service.document(
        Owner.account(ACCOUNT), numbers={"9": {"module": "play", "data": {"id": "beep"}}}
    )
    alice, bob = await connected_call(service)
    junks: list[dict[str, Any]] = [
        {},
        {"type": 5},
        {"type": "StasisStart"},
        {"type": "StasisStart", "channel": "x", "args": "dial"},
        {"type": "StasisStart", "channel": {"id": None}},
        {"type": "ChannelDtmfReceived", "channel": {"id": "nope"}, "digit": "1"},
        {"type": "Dial", "peer": [1, 2]},
        {"type": "SomethingNew", "channel": {"id": "x"}},
        {"type": "PlaybackFinished", "playback": {"target_uri": 7}},
    ]
    for junk in junks:
        service.engine.route(junk)
    call = next(iter(service.engine.calls.values()))
    caller_id = call.legs["caller"].channel_id
    for digit in "1234567890#" * 20:  # a storm of digits on the caller's leg
        service.engine.route(
            {"type": "ChannelDtmfReceived", "channel": {"id": caller_id}, "digit": digit}
        )
    service.engine.route(
        {"type": "ChannelDtmfReceived", "channel": {"id": caller_id}, "digit": "xx"}
    )
    await asyncio.sleep(0.2)
    assert service.matches() == []
    await alice.press("*9", FAST)
    await service.wait_matches(1)
    await bob.wait_hears("playback", "sound:beep")


async def test_calls_survive_a_service_restart_and_are_adopted(
    driver: Driver, database_url: str, db: Database, tmp_path: Path
) -> None:
    sim_only(driver)
    journal = tmp_path / "journal.jsonl"
    first = await start_service(driver, database_url, db, journal)
    await first.document(
        Owner.account(ACCOUNT), numbers={"9": {"module": "play", "data": {"id": "beep"}}}
    )
    alice, bob = await connected_call(first)
    await stop_service(first)  # our process "restarts"; the call goes on in Asterisk
    await alice.wait_hears("party", "bob")
    second = await start_service(driver, database_url, db, journal)
    try:
        assert len(second.engine.calls) == 1
        await alice.press("*9", FAST)
        await second.wait_matches(1)
        await bob.wait_hears("playback", "sound:beep")
        await alice.hangup()
        await bob.wait_idle()
    finally:
        await stop_service(second)


async def test_dial_refused_right_after_create_is_retried(service: Service) -> None:
    """Seen on Asterisk 22: 409 "not in Stasis" for a dial just after the create. The dial-mode
    callee is originated; an attended transfer still creates and dials its target."""
    driver = sim_only(service.driver)
    await service.document(
        Owner.account(ACCOUNT),
        numbers={
            "4": {"module": "transfer", "data": {"target": "1234", "transfer_type": "attended"}}
        },
    )
    alice, bob = await connected_call(service)
    driver.add_phone("1234")
    driver.sim.core.dial_refusals = 2
    await alice.press("*4", FAST)
    await alice.wait_hears("ringing")  # played before the target is dialed

    def dials() -> int:
        return len([p for _, p, _ in driver.sim.core.requests if p.endswith("/dial")])

    await wait_until(lambda: dials() >= 3)
    await driver.sim.core.wait_for(
        lambda: any(
            c.name.startswith("Local/1234@") and c.dial_started
            for c in driver.sim.core.channels.values()
        )
    )
    assert dials() == 3
    await bob.hangup()  # the held party leaves: the transfer and the call end
    await service.wait_no_calls()
