"""``POST /channels/{id}/dtmf`` on the simulator, as Asterisk 22 does it (res/stasis/control.c):
answered at once, played afterwards in order, heard at the channel's far end only, no event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ari_metaflows.sim import SimulatedAsteriskServer
from ari_metaflows.sim.core import StasisApp

from ..helpers.raw_ari import RawAri
from .test_sim_behaviour import bridged_call


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedAsteriskServer]:
    async with SimulatedAsteriskServer() as server:
        server.core.dialplan.add("default", "100", StasisApp("metaflows", ("dial", "PJSIP/bob")))
        yield server


@pytest.fixture
async def ari(sim: SimulatedAsteriskServer) -> AsyncIterator[RawAri]:
    async with RawAri(sim.url, sim.username, sim.password, "metaflows") as client:
        yield client


async def test_answers_before_the_digits_are_played_then_plays_them_in_time(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    _, callee, _ = await bridged_call(sim, ari)
    bob, alice = sim.core.phones["bob"], sim.core.phones["alice"]
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, _ = await ari.request(
        "POST", f"/channels/{callee['id']}/dtmf", dtmf="12", duration=100, between=50
    )
    assert status == 204
    assert bob.heard_dtmf == []  # answered before anything was played
    await sim.core.wait_for(lambda: bob.heard_dtmf == ["1"], 1.0)
    assert loop.time() - started >= 0.09  # the first digit lasts 100 ms
    await sim.core.wait_for(lambda: bob.heard_dtmf == ["1", "2"], 1.0)
    assert loop.time() - started >= 0.24  # then 50 ms between, then 100 ms
    assert alice.heard_dtmf == []  # sent out on bob's channel: the bridge does not carry it
    assert "ChannelDtmfReceived" not in ari.types()


async def test_requests_to_one_channel_play_one_after_another(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    _, callee, _ = await bridged_call(sim, ari)
    bob = sim.core.phones["bob"]
    for digits in ("12", "3", "4"):
        status, _ = await ari.request(
            "POST", f"/channels/{callee['id']}/dtmf", dtmf=digits, duration=40, between=10
        )
        assert status == 204
    await sim.core.wait_for(lambda: len(bob.heard_dtmf) == 4, 2.0)
    assert bob.heard_dtmf == ["1", "2", "3", "4"]


async def test_bad_requests_get_asterisks_answers(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    _, callee, _ = await bridged_call(sim, ari)
    status, _ = await ari.request("POST", f"/channels/{callee['id']}/dtmf")
    assert status == 400  # DTMF is required
    status, _ = await ari.request("POST", "/channels/nope/dtmf", dtmf="1")
    assert status == 404
    # bob hangs up while his digits are still to be played: nothing more is heard
    status, _ = await ari.request("POST", f"/channels/{callee['id']}/dtmf", dtmf="5", duration=200)
    assert status == 204
    sim.core.phone_hangs_up(sim.core.phones["bob"])
    status, _ = await ari.request("POST", f"/channels/{callee['id']}/dtmf", dtmf="1")
    assert status == 404
    await asyncio.sleep(0.3)
    assert sim.core.phones["bob"].heard_dtmf == []


async def test_absorbed_digits_raise_the_event_and_only_a_relay_is_heard(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    caller, callee, _ = await bridged_call(sim, ari, absorb=True)
    bob = sim.core.phones["bob"]
    sim.core.phone_presses(caller, "7", 80)
    event = await ari.wait_event("ChannelDtmfReceived")
    assert (event["digit"], event["duration_ms"]) == ("7", 80)
    assert bob.heard_dtmf == []
    await ari.request("POST", f"/channels/{callee['id']}/dtmf", dtmf="7", duration=80)
    await sim.core.wait_for(lambda: bob.heard_dtmf == ["7"], 1.0)
    assert [e["type"] for e in ari.events].count("ChannelDtmfReceived") == 1
