"""hold/resume and park/unpark, end to end (SPEC §6; issue 6)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ari_metaflows.features.hold import held
from ari_metaflows.features.park import dial_string_of, parking_lots, parse_slot_range
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.sim.core import DialPhone, StasisApp
from ari_metaflows.testing.scenario import SimDriver

from ..helpers.engine_service import (
    ACCOUNT,
    ADMIN,
    FAST,
    Service,
    connected_call,
    requests_to,
    sim_only,
    the_call,
    wait_until,
)


async def doc(service: Service, **numbers: Any) -> None:
    await service.document(
        Owner.account(ACCOUNT),
        numbers=numbers,
        patterns={
            "8(\\d+)": {"module": "callflow"},
            "7(\\d+)": {"module": "park"},
        },
    )


# -- hold / resume --------------------------------------------------------------------------


async def test_hold_then_unhold_key(service: Service) -> None:
    await doc(service, **{"5": {"module": "hold", "data": {"moh": "default"}}})
    alice, bob = await connected_call(service)
    await alice.press("*5", FAST)
    await wait_until(lambda: held(the_call(service)) is not None)
    await bob.wait_hears("moh", "default")
    await alice.wait_hears("silence")
    assert the_call(service).describe("caller")["held"] is True
    await alice.press("1", FAST)  # no binding digit
    await wait_until(lambda: held(the_call(service)) is None)
    await bob.wait_hears("party", "alice")
    await alice.wait_hears("party", "bob")


async def test_hold_twice_resume_code_and_resume_when_not_held(service: Service) -> None:
    await doc(
        service,
        **{"5": {"module": "hold"}, "6": {"module": "resume"}},
    )
    alice, bob = await connected_call(service)
    await alice.press("*6", FAST)  # not held: nothing changes
    await service.wait_matches(1)
    await alice.press("*5", FAST)
    await bob.wait_hears("moh")
    await alice.press("*5", FAST)  # already held: still one hold
    await service.wait_matches(3)
    await asyncio.sleep(0.1)
    assert len(requests_to(service, "/moh")) in (0, 1)
    await alice.press("*6", FAST)
    await bob.wait_hears("party", "alice")
    await alice.wait_hears("party", "bob")


@pytest.mark.parametrize("who_leaves", ["holder", "held"])
async def test_either_party_hanging_up_while_held(service: Service, who_leaves: str) -> None:
    await doc(service, **{"5": {"module": "hold"}})
    alice, bob = await connected_call(service)
    await alice.press("*5", FAST)
    await bob.wait_hears("moh")
    leaving, staying = (alice, bob) if who_leaves == "holder" else (bob, alice)
    await leaving.hangup()
    await staying.wait_idle()
    await service.wait_no_calls()
    driver = service.driver
    if isinstance(driver, SimDriver):
        await driver.sim.core.wait_for(lambda: not driver.sim.core.bridges)


# -- park / unpark --------------------------------------------------------------------------


def dial_unpark(driver: SimDriver, phone: Any, slot: str) -> None:
    driver.sim.core.dialplan.add("unpark-test", slot, StasisApp(driver.app, ("unpark", slot)))
    phone.phone.call(slot, "unpark-test")


async def test_park_says_the_slot_and_unpark_retrieves(service: Service, api: Any) -> None:
    driver = sim_only(service.driver)
    await doc(service, **{"7": {"module": "park"}})
    alice, bob = await connected_call(service)
    await alice.press("*7", FAST)
    await bob.wait_hears("moh")
    await alice.wait_idle()  # after hearing "seven zero one"
    plays = [q["media"] for q in requests_to(service, "/play")]
    assert "digits:701" in plays
    body = await (await api.get(f"/v2/accounts/{ACCOUNT}/parked_calls", headers=ADMIN)).json()
    (parked,) = body["data"]
    assert parked["slot"] == "701"
    assert parked["parker"] == "PJSIP/alice"
    carol = driver.add_phone("carol")
    dial_unpark(driver, carol, "701")
    await carol.wait_hears("party", "bob")
    await bob.wait_hears("party", "carol")
    body = await (await api.get(f"/v2/accounts/{ACCOUNT}/parked_calls", headers=ADMIN)).json()
    assert body["data"] == []
    # The retrieved call is a normal call again: codes work, hangup ends it.
    await bob.hangup()
    await carol.wait_idle()
    await service.wait_no_calls()


async def test_park_in_a_captured_slot_and_an_occupied_slot(service: Service) -> None:
    driver = sim_only(service.driver)
    await doc(service)
    alice, _bob = await connected_call(service)
    await alice.press("*7705", FAST)
    await alice.wait_idle(timeout=5)
    carol = driver.add_phone("carol", None)
    dave = driver.add_phone("dave")
    await driver.call(carol, dave)
    await dave.answer()
    await carol.wait_hears("party", "dave")
    await carol.press("*7705", FAST)  # taken by bob
    await carol.wait_hears("playback", "sound:pbx-parkingfailed")
    await carol.wait_hears("party", "dave")  # the call goes on
    assert parking_lots(service.engine).get(ACCOUNT, "705") is not None


async def test_unpark_of_an_empty_slot_goes_back_to_the_dialplan(service: Service) -> None:
    driver = sim_only(service.driver)
    carol = driver.add_phone("carol")
    dial_unpark(driver, carol, "709")
    channel = carol.phone.channel
    await carol.wait_idle()
    assert channel is not None
    assert channel.variables["METAFLOWS_UNPARK_STATUS"] == "EMPTY"


async def test_park_timeout_rings_the_parker_back(service: Service) -> None:
    driver = sim_only(service.driver)
    await doc(service, **{"7": {"module": "park", "data": {"timeout": 1}}})
    driver.sim.core.dialplan.add("metaflows-park-timeout", "701", DialPhone("alice", 20))
    alice, bob = await connected_call(service)
    await alice.press("*7", FAST)
    await alice.wait_idle()
    await alice.answer(timeout=5)  # the ring-back
    await bob.wait_hears("party", "alice")
    assert not parking_lots(service.engine).of_account(ACCOUNT)


async def test_api_retrieves_a_parked_call_into_the_dialplan(service: Service, api: Any) -> None:
    sim_only(service.driver)
    await doc(service, **{"7": {"module": "park"}})
    alice, bob = await connected_call(service)
    await alice.press("*7", FAST)
    await alice.wait_idle()
    carol = service.driver.add_phone("1234")
    url = f"/v2/accounts/{ACCOUNT}/parked_calls"
    bad = await api.post(f"{url}/701", json={"data": {"extension": "no way"}}, headers=ADMIN)
    assert bad.status == 400
    missing = await api.post(f"{url}/702", json={"data": {"extension": "1234"}}, headers=ADMIN)
    assert missing.status == 404
    other = await api.post(
        "/v2/accounts/acc2/parked_calls/701", json={"data": {"extension": "1234"}}, headers=ADMIN
    )
    assert other.status == 404
    ok = await api.post(f"{url}/701", json={"data": {"extension": "1234"}}, headers=ADMIN)
    assert ok.status == 202
    await carol.answer()
    await bob.wait_hears("party", "1234")


def test_slot_ranges_and_dial_strings() -> None:
    assert parse_slot_range("701-720").first == 701
    for bad in ("720-701", "x-1", "1", "1-100000"):
        with pytest.raises(ValueError, match=r"."):
            parse_slot_range(bad)
    assert dial_string_of("PJSIP/alice-0000001a") == "PJSIP/alice"
    assert dial_string_of("Local/12@ctx-0000001b;2") == "Local/12@ctx"


# -- through the channels API ----------------------------------------------------------------------


async def test_channels_api_runs_hold_and_resume(service: Service, api: Any) -> None:
    _alice, bob = await connected_call(service)
    leg = the_call(service).legs["caller"].channel_id
    url = f"/v2/accounts/{ACCOUNT}/channels/{leg}"
    response = await api.post(
        url, json={"data": {"action": "hold", "moh": "default"}}, headers=ADMIN
    )
    assert response.status == 202
    await bob.wait_hears("moh")
    response = await api.post(url, json={"data": {"action": "resume"}}, headers=ADMIN)
    assert response.status == 202
    await bob.wait_hears("party", "alice")
    bad = await api.post(url, json={"data": {"action": "audio_level", "level": 9}}, headers=ADMIN)
    assert bad.status == 400
    body = await bad.json()
    assert "data.level" in body["data"]
