"""Snoop channels and event filters in the simulated Asterisk, as Asterisk 22 has them
(channels.json snoopChannel/snoopChannelWithId, applications.json filter; the snoop StasisStart
in ../shared/ari-captures/local-channels-and-bridges.jsonl)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ari_metaflows.sim import SimulatedAsteriskServer, StasisApp

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


async def test_a_snoop_enters_the_app_with_its_args_and_records_both_parties(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    caller, callee, bridge = await bridged_call(sim, ari)
    status, snoop = await ari.request(
        "POST",
        f"/channels/{caller.id}/snoop/rec-1",
        spy="both",
        app="metaflows",
        appArgs="recorder,call-1",
    )
    assert status == 200
    assert snoop["id"] == "rec-1"
    assert snoop["name"].startswith(f"Snoop/{caller.id}-")
    assert snoop["state"] == "Up"
    start = await ari.wait_event("StasisStart", lambda e: e["channel"]["id"] == "rec-1")
    assert start["args"] == ["recorder", "call-1"]
    assert start["channel"]["dialplan"]["app_data"] == "metaflows,recorder,call-1"
    status, _ = await ari.request(
        "POST", "/channels/rec-1/record", name="snooped", format="wav", ifExists="fail"
    )
    assert status == 201
    await sim.core.wait_for(lambda: sim.core.live_recordings["snooped"].state == "recording")
    _, members = await ari.request("GET", f"/bridges/{bridge['id']}")
    assert sorted(members["channels"]) == sorted([caller.id, callee["id"]])  # snoop not in it
    await ari.request("POST", "/recordings/live/snooped/stop")
    assert sim.core.stored_recordings["snooped"].heard == {"alice", "bob"}


@pytest.mark.parametrize(
    ("spy", "heard"), [("in", {"alice"}), ("out", {"bob"}), ("both", {"alice", "bob"})]
)
async def test_spy_direction_decides_whose_voice_is_recorded(
    sim: SimulatedAsteriskServer, ari: RawAri, spy: str, heard: set[str]
) -> None:
    caller, _callee, _bridge = await bridged_call(sim, ari)
    _, snoop = await ari.request("POST", f"/channels/{caller.id}/snoop", spy=spy, app="metaflows")
    await ari.wait_event("StasisStart", lambda e: e["channel"]["id"] == snoop["id"])
    await ari.request("POST", f"/channels/{snoop['id']}/record", name="r", format="wav")
    await sim.core.wait_for(lambda: sim.core.live_recordings["r"].state == "recording")
    await ari.request("POST", "/recordings/live/r/stop")
    assert sim.core.stored_recordings["r"].heard == heard


async def test_bad_snoop_requests_are_refused(sim: SimulatedAsteriskServer, ari: RawAri) -> None:
    caller, _callee, _bridge = await bridged_call(sim, ari)
    path = f"/channels/{caller.id}/snoop"
    assert (await ari.request("POST", path, spy="sideways", app="metaflows"))[0] == 400
    assert (await ari.request("POST", path, app="metaflows"))[0] == 400  # spy and whisper none
    assert (await ari.request("POST", "/channels/nope/snoop", spy="in", app="metaflows"))[0] == 404
    assert (await ari.request("POST", path + "/dup", spy="in", app="metaflows"))[0] == 200
    assert (await ari.request("POST", path + "/dup", spy="in", app="metaflows"))[0] == 500


async def test_the_snoop_goes_with_the_spied_channel(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    caller, _callee, _bridge = await bridged_call(sim, ari)
    await ari.request("POST", f"/channels/{caller.id}/snoop/s1", spy="both", app="metaflows")
    await ari.wait_event("StasisStart", lambda e: e["channel"]["id"] == "s1")
    await ari.request("POST", "/channels/s1/record", name="gone-with-it", format="wav")
    await sim.core.wait_for(lambda: sim.core.live_recordings["gone-with-it"].state == "recording")
    await ari.request("DELETE", f"/channels/{caller.id}")
    await ari.wait_event("StasisEnd", lambda e: e["channel"]["id"] == "s1")
    assert "s1" not in sim.core.channels
    assert "gone-with-it" in sim.core.stored_recordings


async def test_an_event_filter_keeps_other_event_types_from_the_app(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    status, app = await ari.request(
        "PUT",
        "/applications/metaflows/eventFilter",
        json={"allowed": [{"type": "StasisStart"}, {"type": "StasisEnd"}]},
    )
    assert status == 200
    assert app["events_allowed"] == [{"type": "StasisEnd"}, {"type": "StasisStart"}]
    caller, _callee, _bridge = await bridged_call(sim, ari)
    await ari.request("DELETE", f"/channels/{caller.id}")
    await ari.wait_event("StasisEnd")
    types = {e["type"] for e in sim.core.event_log if e["application"] == "metaflows"}
    assert types == {"StasisStart", "StasisEnd"}
    bad = await ari.request("PUT", "/applications/metaflows/eventFilter", json={"allowed": 3})
    assert bad[0] == 400
    assert (await ari.request("PUT", "/applications/nope/eventFilter", json={}))[0] == 404
