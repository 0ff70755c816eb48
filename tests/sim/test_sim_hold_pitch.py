"""The simulator's channel hold and PITCH_SHIFT() behave as Asterisk 22's (res/stasis/control.c:
ARI's hold is ``ast_indicate(HOLD)``, which publishes no ChannelHold; func_pitchshift.c accepts
rx/tx/both and 0 < amount <= 4, and ARI answers 400 otherwise)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ari_metaflows.sim import SimulatedAsteriskServer, StasisApp

from ..helpers.raw_ari import RawAri


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedAsteriskServer]:
    async with SimulatedAsteriskServer() as server:
        server.core.dialplan.add("default", "100", StasisApp("metaflows", ("x",)))
        yield server


async def test_ari_hold_is_silent_and_the_device_hears_music(
    sim: SimulatedAsteriskServer,
) -> None:
    alice = sim.add_phone("alice")
    async with RawAri(sim.url, sim.username, sim.password, "metaflows") as ari:
        channel = alice.call("100")
        await ari.wait_event("StasisStart")
        await ari.request("POST", f"/channels/{channel.id}/answer")
        status, _ = await ari.request("POST", f"/channels/{channel.id}/hold")
        assert status == 204
        assert alice.hears() == ("moh", "default")
        status, _ = await ari.request("DELETE", f"/channels/{channel.id}/hold")
        assert status == 204
        assert alice.hears() == ("silence", "")
        await asyncio.sleep(0.1)
        assert "ChannelHold" not in ari.types(channel.id)
        assert "ChannelUnhold" not in ari.types(channel.id)

        sim.core.phone_holds(channel, True, "jazz")  # the person presses hold on the phone
        held = await ari.wait_event("ChannelHold")
        assert held["musicclass"] == "jazz"
        sim.core.phone_holds(channel, False)
        await ari.wait_event("ChannelUnhold")


@pytest.mark.parametrize(
    ("variable", "value", "status"),
    [
        ("PITCH_SHIFT(rx)", "1.5", 204),
        ("PITCH_SHIFT(both)", "4", 204),
        ("PITCH_SHIFT(tx)", "lowest", 204),
        ("PITCH_SHIFT(tx)", "4.5", 400),
        ("PITCH_SHIFT(rx)", "0", 400),
        ("PITCH_SHIFT(up)", "1.5", 400),
    ],
)
async def test_pitch_shift_values_as_func_pitchshift(
    sim: SimulatedAsteriskServer, variable: str, value: str, status: int
) -> None:
    alice = sim.add_phone("alice")
    async with RawAri(sim.url, sim.username, sim.password, "metaflows") as ari:
        channel = alice.call("100")
        await ari.wait_event("StasisStart")
        answer, _ = await ari.request(
            "POST", f"/channels/{channel.id}/variable", variable=variable, value=value
        )
        assert answer == status
        assert (variable in channel.variables) is (status == 204)
