"""The simulated Asterisk behaves like Asterisk where the call engine depends on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aioari
import aiohttp
import pytest

from ari_metaflows.sim import (
    Application,
    DialPhone,
    Hangup,
    KeyTiming,
    SimPhone,
    SimulatedAsteriskServer,
    StasisApp,
)

from ..helpers.raw_ari import RawAri


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedAsteriskServer]:
    async with SimulatedAsteriskServer() as server:
        server.core.dialplan.add("default", "100", StasisApp("metaflows", ("dial", "PJSIP/bob")))
        yield server


@pytest.fixture
async def ari(sim: SimulatedAsteriskServer) -> AsyncIterator[RawAri]:
    async with RawAri(sim.url, sim.username, sim.password, "metaflows") as client:
        yield client


async def bridged_call(
    sim: SimulatedAsteriskServer, ari: RawAri, *, absorb: bool = False
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """alice calls, the app dials bob, bob answers, both are bridged (mixing,dtmf_events)."""
    alice = sim.core.phones.get("alice") or sim.core.add_phone("alice")
    if "bob" not in sim.core.phones:
        sim.core.add_phone("bob", on_call="answer")
    caller = sim.core.place_call(alice, "100")
    await ari.wait_event("StasisStart")
    await ari.request("POST", f"/channels/{caller.id}/answer")
    _, callee = await ari.request(
        "POST", "/channels/create", endpoint="PJSIP/bob", app="metaflows", appArgs="callee"
    )
    await ari.request("POST", f"/channels/{callee['id']}/dial", caller=caller.id)
    await ari.wait_event("StasisStart", lambda e: e["args"] == ["callee"])
    _, bridge = await ari.request("POST", "/bridges", type="mixing,dtmf_events")
    await ari.request(
        "POST",
        f"/bridges/{bridge['id']}/addChannel",
        channel=caller.id,
        absorbDTMF="true" if absorb else "false",
    )
    await ari.request("POST", f"/bridges/{bridge['id']}/addChannel", channel=callee["id"])
    return caller, callee, bridge


# -- auth and errors ---------------------------------------------------------------------------


async def test_credentials_are_required(sim: SimulatedAsteriskServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(sim.url + "/ari/channels") as response:
            assert response.status == 401
        async with session.get(
            sim.url + "/ari/channels", params={"api_key": "asterisk:secret"}
        ) as response:
            assert response.status == 200
        async with session.get(
            sim.url + "/ari/channels",
            headers={"Authorization": aiohttp.encode_basic_auth("asterisk", "wrong")},
        ) as response:
            assert response.status == 401


async def test_gone_and_non_stasis_channels_get_asterisks_errors(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    status, body = await ari.request("POST", "/channels/nope/answer")
    assert (status, body) == (404, {"message": "Channel not found"})
    caller, callee, bridge = await bridged_call(sim, ari)
    await ari.request("POST", f"/channels/{caller.id}/continue", context="default", extension="x")
    status, body = await ari.request("POST", f"/channels/{caller.id}/answer")
    assert status in (404, 409)
    status, body = await ari.request("POST", "/bridges/nope/addChannel", channel=callee["id"])
    assert status == 404
    status, body = await ari.request("POST", f"/bridges/{bridge['id']}/addChannel", channel="nope")
    assert (status, body) == (400, {"message": "Channel not found"})
    status, _ = await ari.request("POST", f"/bridges/{bridge['id']}/addChannel")
    assert status == 400
    status, _ = await ari.request("DELETE", f"/channels/{callee['id']}", reason="bogus")
    assert status == 400
    status, _ = await ari.request(
        "POST", f"/bridges/{bridge['id']}/addChannel", channel=callee["id"], absorbDTMF="maybe"
    )
    assert status == 400


# -- dialing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "status", "cause"),
    [
        ({"on_call": "busy"}, "BUSY", 17),
        ({"online": False}, "CHANUNAVAIL", 20),
        ({"on_call": "ignore"}, "NOANSWER", 19),
    ],
)
async def test_dial_failures(
    sim: SimulatedAsteriskServer, ari: RawAri, setup: dict[str, Any], status: str, cause: int
) -> None:
    sim.core.add_phone("bob", **setup)
    _, callee = await ari.request(
        "POST", "/channels/create", endpoint="PJSIP/bob", app="metaflows", appArgs="callee"
    )
    await ari.request("POST", f"/channels/{callee['id']}/dial", timeout=1)
    dial = await ari.wait_event("Dial", lambda e: e["dialstatus"] == status)
    assert dial["peer"]["id"] == callee["id"]
    destroyed = await ari.wait_event("ChannelDestroyed")
    assert destroyed["cause"] == cause
    assert "StasisStart" not in ari.types(callee["id"])


async def test_ringing_then_answer_then_stasis_start(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    bob = sim.add_phone("bob")
    _, callee = await ari.request(
        "POST", "/channels/create", endpoint="PJSIP/bob", app="metaflows", appArgs="callee"
    )
    await ari.request("POST", f"/channels/{callee['id']}/dial")
    await ari.wait_event("Dial", lambda e: e["dialstatus"] == "RINGING")
    assert "StasisStart" not in ari.types()
    await bob.answer()
    start = await ari.wait_event("StasisStart")
    assert start["args"] == ["callee"]
    assert start["channel"]["state"] == "Up"
    assert [e["dialstatus"] for e in ari.events if e["type"] == "Dial"] == [
        "",
        "RINGING",
        "ANSWER",
    ]


async def test_app_cancelling_a_ringing_channel(sim: SimulatedAsteriskServer, ari: RawAri) -> None:
    bob = sim.add_phone("bob")
    _, callee = await ari.request("POST", "/channels/create", endpoint="PJSIP/bob", app="metaflows")
    await ari.request("POST", f"/channels/{callee['id']}/dial")
    await bob.wait_ringing()
    await ari.request("DELETE", f"/channels/{callee['id']}")
    await ari.wait_event("Dial", lambda e: e["dialstatus"] == "CANCEL")
    await ari.wait_event("ChannelDestroyed")
    assert bob.hears().kind == "idle"


# -- originate (POST /channels/{id} with app; captured on Asterisk 22.10.1) -----------------


async def test_an_originated_channel_enters_the_app_once_answered(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    bob = sim.add_phone("bob")
    status, callee = await ari.request(
        "POST", "/channels/mf-1", endpoint="PJSIP/bob", app="metaflows", appArgs="callee,c1"
    )
    assert status == 200
    assert (callee["id"], callee["state"]) == ("mf-1", "Down")
    await bob.wait_ringing()
    assert "StasisStart" not in ari.types("mf-1")  # subscribed, not in Stasis yet
    await bob.answer()
    start = await ari.wait_event("StasisStart")
    assert (start["args"], start["channel"]["state"]) == (["callee", "c1"], "Up")
    dials = [e for e in ari.events if e["type"] == "Dial"]
    assert [e["dialstatus"] for e in dials] == ["", "RINGING", "ANSWER"]
    assert not any("caller" in e for e in dials)  # the dialer has no calling channel
    kinds = ari.types("mf-1")
    assert kinds.index("StasisStart") > kinds.index("Dial")  # Dial ANSWER first
    status, _ = await ari.request("POST", "/channels/mf-1", endpoint="PJSIP/bob", app="metaflows")
    assert status == 409  # the id is taken


@pytest.mark.parametrize(
    ("setup", "status", "cause"),
    [({"on_call": "busy"}, "BUSY", 17), ({"online": False}, "CHANUNAVAIL", 20)],
)
async def test_an_originated_channel_that_fails(
    sim: SimulatedAsteriskServer, ari: RawAri, setup: dict[str, Any], status: str, cause: int
) -> None:
    sim.core.add_phone("bob", **setup)
    await ari.request("POST", "/channels/mf-2", endpoint="PJSIP/bob", app="metaflows")
    dial = await ari.wait_event("Dial", lambda e: e["dialstatus"] == status)
    destroyed = await ari.wait_event("ChannelDestroyed")
    assert (dial["peer"]["id"], destroyed["cause"]) == ("mf-2", cause)
    assert "StasisStart" not in ari.types("mf-2")


async def test_an_originate_timeout_ends_the_channel_without_a_status(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    bob = sim.add_phone("bob")
    await ari.request("POST", "/channels/mf-3", endpoint="PJSIP/bob", app="metaflows", timeout=1)
    await bob.wait_ringing()
    destroyed = await ari.wait_event("ChannelDestroyed", timeout=3)
    assert destroyed["cause"] == 19
    assert [e["dialstatus"] for e in ari.events if e["type"] == "Dial"] == ["", "RINGING"]
    assert bob.hears().kind == "idle"


async def test_an_originated_local_channel_to_an_unknown_number(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    """Its dialer cannot even call it (main/dial.c begin_dial_channel): no Dial event."""
    await ari.request("POST", "/channels/mf-4", endpoint="Local/nobody@nowhere/n", app="metaflows")
    destroyed = await ari.wait_event("ChannelDestroyed")
    assert destroyed["cause"] == 1
    assert "Dial" not in ari.types("mf-4")


async def test_a_far_end_rejecting_an_originate_with_an_unnamed_cause(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    """The dialer names what it has no name for NOANSWER; the cause says more."""
    bob = sim.add_phone("bob")
    await ari.request("POST", "/channels/mf-7", endpoint="PJSIP/bob", app="metaflows")
    await bob.wait_ringing()
    sim.core.phone_rejects(sim.core.phones["bob"], cause=21)
    dial = await ari.wait_event("Dial", lambda e: e["dialstatus"] not in ("", "RINGING"))
    destroyed = await ari.wait_event("ChannelDestroyed")
    assert (dial["dialstatus"], destroyed["cause"]) == ("NOANSWER", 21)


async def test_an_originate_to_a_phone_that_forwards(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    sim.add_phone("bob")
    sim.core.phones["bob"].forward_to = "carol"
    carol = sim.add_phone("carol")
    await ari.request(
        "POST", "/channels/mf-9", endpoint="PJSIP/bob", app="metaflows", appArgs="callee,c9"
    )
    dial = await ari.wait_event("Dial", lambda e: e["dialstatus"] == "CANCEL")
    assert dial["peer"]["id"] == "mf-9"
    assert dial["forwarded"]["name"].startswith("PJSIP/carol-")
    await ari.wait_event("ChannelDestroyed")
    await carol.wait_ringing()
    await carol.answer()  # the new channel enters the app with the original's arguments
    start = await ari.wait_event("StasisStart")
    assert (start["channel"]["id"], start["args"]) == (dial["forwarded"]["id"], ["callee", "c9"])


async def test_an_originated_local_channels_far_half_is_the_apps_too(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    sim.core.dialplan.add("phones", "bob", DialPhone("bob"))
    bob = sim.add_phone("bob")
    await ari.request("POST", "/channels/mf-8", endpoint="Local/bob@phones/n", app="metaflows")
    await bob.wait_ringing()
    application = sim.core.application_json("metaflows")
    assert {"mf-8", "mf-8;2"} <= set(application["channel_ids"])
    await bob.answer()
    start = await ari.wait_event("StasisStart")
    assert start["channel"]["id"] == "mf-8"
    assert "StasisStart" not in ari.types("mf-8;2")  # in the dialplan, not in our app
    assert "ChannelStateChange" in ari.types("mf-8;2")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"endpoint": "PJSIP/bob"}, "Application or extension must be specified"),
        (
            {"endpoint": "PJSIP/bob", "app": "metaflows", "originator": "nobody"},
            "Provided originator channel was not found",
        ),
    ],
)
async def test_an_originate_refused(
    sim: SimulatedAsteriskServer, ari: RawAri, params: dict[str, str], message: str
) -> None:
    sim.add_phone("bob")
    status, body = await ari.request("POST", "/channels/mf-5", **params)
    assert (status, body) == (400, {"message": message})
    assert not sim.core.channels


@pytest.mark.parametrize("endpoint", ["PJSIP/nobody", "Bogus/bob", "PJSIP/"])
@pytest.mark.parametrize("path", ["/channels/mf-6", "/channels/create"])
async def test_an_endpoint_asterisk_cannot_request(
    sim: SimulatedAsteriskServer, ari: RawAri, endpoint: str, path: str
) -> None:
    """As Asterisk 22.10.1 answers both, worded as it words them."""
    sim.add_phone("bob")
    status, body = await ari.request("POST", path, endpoint=endpoint, app="metaflows")
    assert (status, body) == (500, {"error": "Allocation failed"})
    assert not sim.core.channels


# -- DTMF ------------------------------------------------------------------------------------


async def test_dtmf_event_only_on_the_reading_channel_and_passed_through(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    caller, _, _ = await bridged_call(sim, ari)
    alice = sim.core.phones["alice"]
    bob = sim.core.phones["bob"]
    for digit in "*9":
        sim.core.phone_presses(caller, digit, 100)
    await ari.wait_event("ChannelDtmfReceived", lambda e: e["digit"] == "9")
    received = [e for e in ari.events if e["type"] == "ChannelDtmfReceived"]
    assert [(e["channel"]["id"], e["digit"], e["duration_ms"]) for e in received] == [
        (caller.id, "*", 100),
        (caller.id, "9", 100),
    ]
    assert bob.heard_dtmf == ["*", "9"]
    assert alice.heard_dtmf == []


async def test_absorbed_dtmf_still_raises_the_event_but_is_not_passed(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    caller, _, _ = await bridged_call(sim, ari, absorb=True)
    sim.core.phone_presses(caller, "5", 100)
    await ari.wait_event("ChannelDtmfReceived")
    assert sim.core.phones["bob"].heard_dtmf == []


async def test_phone_press_timing_is_one_event_per_digit_at_its_end(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    await bridged_call(sim, ari)
    alice = SimPhone(sim.core, sim.core.phones["alice"])
    loop = asyncio.get_running_loop()
    started = loop.time()
    await alice.press("123", KeyTiming(duration_ms=100, gap_ms=80))
    elapsed = loop.time() - started
    await ari.wait_event("ChannelDtmfReceived", lambda e: e["digit"] == "3")
    digits = [e["digit"] for e in ari.events if e["type"] == "ChannelDtmfReceived"]
    assert digits == ["1", "2", "3"]
    assert elapsed >= 3 * 0.1 + 2 * 0.08 - 0.01


# -- media ------------------------------------------------------------------------------------


async def test_playback_is_heard_then_the_call_again(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    caller, _, bridge = await bridged_call(sim, ari)
    alice = SimPhone(sim.core, sim.core.phones["alice"])
    bob = SimPhone(sim.core, sim.core.phones["bob"])
    await alice.wait_hears("party", "bob")
    status, playback = await ari.request(
        "POST", f"/bridges/{bridge['id']}/play", media="sound:beep"
    )
    assert status == 201
    assert playback["target_uri"] == f"bridge:{bridge['id']}"
    await ari.wait_event("PlaybackStarted")
    assert alice.hears() == ("playback", "sound:beep")
    assert bob.hears() == ("playback", "sound:beep")
    finished = await ari.wait_event("PlaybackFinished")
    assert finished["playback"]["state"] == "done"
    assert alice.hears() == ("party", "bob")
    await ari.request("POST", f"/channels/{caller.id}/moh", mohClass="jazz")
    assert alice.hears() == ("moh", "jazz")
    assert bob.hears() == ("party", "alice")


async def test_bridge_recording_lifecycle(sim: SimulatedAsteriskServer, ari: RawAri) -> None:
    caller, _, bridge = await bridged_call(sim, ari)
    status, body = await ari.request(
        "POST", f"/bridges/{bridge['id']}/record", name="acc1-rec1", format="mp3"
    )
    assert (status, body) == (422, {"message": "The format specified is unknown on this system"})
    status, live = await ari.request(
        "POST", f"/bridges/{bridge['id']}/record", name="acc1-rec1", format="wav"
    )
    assert status == 201
    assert live["state"] == "queued"
    started = await ari.wait_event("RecordingStarted")
    assert started["recording"]["target_uri"] == f"bridge:{bridge['id']}"
    status, _ = await ari.request(
        "POST", f"/bridges/{bridge['id']}/record", name="acc1-rec1", format="wav"
    )
    assert status == 409
    assert (await ari.request("POST", "/recordings/live/acc1-rec1/mute"))[0] == 204
    await asyncio.sleep(0.05)
    assert (await ari.request("DELETE", "/recordings/live/acc1-rec1/mute"))[0] == 204
    await ari.request("DELETE", f"/channels/{caller.id}")  # the recording goes on with bob
    await ari.request("DELETE", f"/bridges/{bridge['id']}")  # …until the bridge goes
    finished = await ari.wait_event("RecordingFinished")
    assert finished["recording"]["state"] == "done"
    assert "duration" in finished["recording"]
    stored = sim.core.stored_recordings["acc1-rec1"]
    assert stored.heard == {"alice", "bob"}
    assert stored.muted_seconds >= 0.04
    async with (
        aiohttp.ClientSession(
            headers={"Authorization": aiohttp.encode_basic_auth("asterisk", "secret")}
        ) as session,
        session.get(sim.url + "/ari/recordings/stored/acc1-rec1/file") as response,
    ):
        audio = await response.read()
    assert response.status == 200
    assert audio[:4] == b"RIFF"
    assert audio[8:12] == b"WAVE"
    assert (await ari.request("DELETE", "/recordings/stored/acc1-rec1"))[0] == 204
    assert (await ari.request("GET", "/recordings/stored/acc1-rec1"))[0] == 404


# -- dialplan ---------------------------------------------------------------------------------


async def test_continue_runs_the_dialplan_and_connects_the_phone(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    _, callee, _ = await bridged_call(sim, ari)
    sim.core.add_phone("carol", on_call="answer")
    sim.core.dialplan.add("transfers", "1234", DialPhone("carol"))
    await ari.request(
        "POST", f"/channels/{callee['id']}/continue", context="transfers", extension="1234"
    )
    await ari.wait_event("StasisEnd", lambda e: e["channel"]["id"] == callee["id"])
    bob = SimPhone(sim.core, sim.core.phones["bob"])
    carol = SimPhone(sim.core, sim.core.phones["carol"])
    await bob.wait_hears("party", "carol")
    assert carol.hears() == ("party", "bob")
    alice = SimPhone(sim.core, sim.core.phones["alice"])
    assert alice.hears() == ("silence", "")
    await carol.hangup()
    await sim.core.wait_for(lambda: bob.channel is None)


async def test_failed_dialplan_dial_goes_on_to_the_next_priority(
    sim: SimulatedAsteriskServer,
) -> None:
    sim.core.add_phone("carol", on_call="busy")
    sim.core.dialplan.add("default", "200", DialPhone("carol"), Application("VoiceMail"))
    alice = sim.add_phone("alice")
    alice.call("200")
    await alice.wait_hears("application", "VoiceMail")
    assert alice.channel is not None
    assert alice.channel.variables["DIALSTATUS"] == "BUSY"


async def test_stasis_without_the_app_fails_over_like_the_sample_dialplan(
    sim: SimulatedAsteriskServer,
) -> None:
    sim.core.dialplan.add(
        "default", "300", StasisApp("metaflows", ("dial", "PJSIP/bob")), DialPhone("bob")
    )
    sim.core.add_phone("bob", on_call="answer")
    alice = sim.add_phone("alice")
    channel = alice.call("300")  # no websocket is connected for "metaflows"
    await alice.wait_hears("party", "bob")
    assert channel.variables["STASISSTATUS"] == "FAILED"


async def test_unknown_extension_hangs_up(sim: SimulatedAsteriskServer) -> None:
    sim.core.dialplan.add("default", "400", Hangup(cause=21))
    alice = sim.add_phone("alice")
    alice.call("999")
    assert alice.hears().kind == "idle"
    alice.call("400")
    assert alice.hears().kind == "idle"


async def test_local_channel_rings_the_phone_behind_the_extension(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    carol_phone = sim.add_phone("carol")
    sim.core.dialplan.add("transfers", "1234", DialPhone("carol"))
    _, local = await ari.request(
        "POST",
        "/channels/create",
        endpoint="Local/1234@transfers",
        app="metaflows",
        appArgs="target",
    )
    assert local["name"].startswith("Local/1234@transfers-")
    await ari.request("POST", f"/channels/{local['id']}/dial", timeout=5)
    await ari.wait_event("Dial", lambda e: e["dialstatus"] == "RINGING")
    await carol_phone.answer()
    start = await ari.wait_event("StasisStart", lambda e: e["args"] == ["target"])
    assert start["channel"]["id"] == local["id"]
    await ari.request("POST", f"/channels/{local['id']}/moh")
    assert carol_phone.hears() == ("moh", "default")
    await carol_phone.hangup()
    await ari.wait_event("StasisEnd", lambda e: e["channel"]["id"] == local["id"])


# -- websockets, resync, restart ----------------------------------------------------------------


async def test_events_in_a_websocket_gap_are_lost_but_calls_stay_up(
    sim: SimulatedAsteriskServer,
) -> None:
    async with RawAri(sim.url, sim.username, sim.password, "metaflows") as ari:
        caller, callee, bridge = await bridged_call(sim, ari)
    await sim.drop_websockets()
    sim.core.phone_presses(caller, "7", 100)  # nobody listens: lost
    assert sim.core.phones["bob"].heard_dtmf == ["7"]  # media goes on
    async with RawAri(sim.url, sim.username, sim.password, "metaflows") as again:
        status, app = await again.request("GET", "/applications/metaflows")
        assert status == 200
        assert set(app["channel_ids"]) == {caller.id, callee["id"]}
        assert app["bridge_ids"] == [bridge["id"]]
        sim.core.phone_presses(caller, "8", 100)
        event = await again.wait_event("ChannelDtmfReceived")
        assert event["digit"] == "8"
        assert [e["digit"] for e in again.events if e["type"] == "ChannelDtmfReceived"] == ["8"]


async def test_a_second_websocket_replaces_the_first(sim: SimulatedAsteriskServer) -> None:
    async with (
        RawAri(sim.url, sim.username, sim.password, "metaflows") as first,
        RawAri(sim.url, sim.username, sim.password, "metaflows") as second,
    ):
        replaced = await first.wait_event("ApplicationReplaced")
        assert replaced["application"] == "metaflows"
        sim.core.add_phone("alice")
        sim.core.place_call(sim.core.phones["alice"], "100")
        await second.wait_event("StasisStart")
        assert "StasisStart" not in first.types()


async def test_restart_drops_every_call_and_changes_the_startup_time(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    await bridged_call(sim, ari)
    _, before = await ari.request("GET", "/asterisk/info")
    await asyncio.sleep(0.01)
    await sim.restart()
    async with RawAri(sim.url, sim.username, sim.password, "metaflows") as again:
        _, after = await again.request("GET", "/asterisk/info")
        assert after["status"]["startup_time"] != before["status"]["startup_time"]
        assert (await again.request("GET", "/channels"))[1] == []
        assert (await again.request("GET", "/bridges"))[1] == []


async def test_swagger_documents_are_served_with_the_request_host(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    status, listing = await ari.request("GET", "/api-docs/resources.json")
    assert status == 200
    assert listing["basePath"] == sim.url + "/ari"
    status, channels = await ari.request("GET", "/api-docs/channels.json")
    assert channels["basePath"] == sim.url + "/ari"
    assert (await ari.request("GET", "/api-docs/nothing.json"))[0] == 404


# -- aioari ----------------------------------------------------------------------------------


async def test_aioari_runs_a_call_end_to_end(sim: SimulatedAsteriskServer) -> None:
    """The real client library against the simulator: create, dial, bridge, DTMF, hangup."""
    alice = sim.add_phone("alice", variables={"METAFLOWS_ACCOUNT_ID": "acc1"})
    bob = sim.add_phone("bob")
    client = await aioari.connect(sim.url, sim.username, sim.password)
    seen: list[dict[str, Any]] = []
    done = asyncio.Event()
    ended = asyncio.Event()

    async def on_start(channel: Any, event: dict[str, Any]) -> None:
        if event["args"][:1] == ["dial"]:
            assert event["channel"]["channelvars"]["METAFLOWS_ACCOUNT_ID"] == "acc1"
            callee = await client.channels.create(
                endpoint=event["args"][1], app="metaflows", appArgs=f"callee,{channel.id}"
            )
            await callee.dial(caller=channel.id, timeout=10)
            await channel.ring()
        else:
            caller_id = event["args"][1]
            bridge = await client.bridges.create(type="mixing,dtmf_events")
            await client.channels.answer(channelId=caller_id)
            await bridge.addChannel(channel=f"{caller_id},{channel.id}")

    def on_any(event: dict[str, Any]) -> None:
        seen.append(event)
        if event["type"] == "ChannelDtmfReceived":
            done.set()
        if event["type"] == "StasisEnd":
            ended.set()

    client.on_channel_event("StasisStart", on_start)
    client.on_event("*", on_any)
    runner = asyncio.create_task(client.run(apps="metaflows"))
    try:
        await sim.core.wait_for(lambda: sim.core.registered("metaflows"))
        alice.call("100")
        await alice.wait_hears("ringing")
        await bob.answer()
        await alice.wait_hears("party", "bob")
        await alice.press("5")
        await asyncio.wait_for(done.wait(), 5)
        await bob.hangup()
        await asyncio.wait_for(ended.wait(), 5)
    finally:
        await client.close()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert alice.hears() == ("silence", "")
    assert [e["digit"] for e in seen if e["type"] == "ChannelDtmfReceived"] == ["5"]


async def test_local_callee_is_in_stasis_before_it_answers(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    """As observed on Asterisk 22.10.1: an app-created Local channel enters Stasis as soon as
    it is dialed (state Down); the answer comes later as ChannelStateChange Up + Dial ANSWER."""
    carol = sim.add_phone("carol")
    sim.core.dialplan.add("transfers", "1234", DialPhone("carol"))
    _, local = await ari.request(
        "POST",
        "/channels/create",
        endpoint="Local/1234@transfers/n",
        app="metaflows",
        appArgs="target",
    )
    await ari.request("POST", f"/channels/{local['id']}/dial")
    start = await ari.wait_event("StasisStart")
    assert start["channel"]["state"] == "Down"
    await carol.answer()
    await ari.wait_event("Dial", lambda e: e["dialstatus"] == "ANSWER")
    types = [(e["type"], e.get("dialstatus")) for e in ari.events]
    assert types[:2] == [("StasisStart", None), ("Dial", "")]
    assert types.count(("StasisStart", None)) == 1
    assert ("ChannelStateChange", None) in types


async def test_rejected_local_callee_is_hung_up_without_a_busy_status(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    """As observed on Asterisk 22.10.1: no BUSY Dial status reaches the app for a Local
    channel; it is in Stasis unanswered, and is then destroyed."""
    carol = sim.add_phone("carol")
    sim.core.dialplan.add("transfers", "1234", DialPhone("carol"))
    _, local = await ari.request(
        "POST",
        "/channels/create",
        endpoint="Local/1234@transfers/n",
        app="metaflows",
        appArgs="target",
    )
    await ari.request("POST", f"/channels/{local['id']}/dial")
    await carol.reject()
    await ari.wait_event("ChannelDestroyed", lambda e: e["channel"]["id"] == local["id"])
    mine = [
        e for e in ari.events if (e.get("channel") or e.get("peer") or {}).get("id") == local["id"]
    ]
    statuses = [e["dialstatus"] for e in mine if e["type"] == "Dial"]
    assert "BUSY" not in statuses
    assert [e["type"] for e in mine[-3:]] == [
        "ChannelHangupRequest",
        "StasisEnd",
        "ChannelDestroyed",
    ]
    assert all(e.get("channel", {}).get("state") != "Up" for e in mine)


async def test_playbacks_on_one_target_play_in_turn(
    sim: SimulatedAsteriskServer, ari: RawAri
) -> None:
    _, _, bridge = await bridged_call(sim, ari)
    await ari.request("POST", f"/bridges/{bridge['id']}/play", media="sound:one")
    await ari.request("POST", f"/bridges/{bridge['id']}/play", media="sound:two")
    alice = SimPhone(sim.core, sim.core.phones["alice"])
    await alice.wait_hears("playback", "sound:one")
    await alice.wait_hears("playback", "sound:two")
    await alice.wait_hears("party", "bob")
    await ari.wait_event("PlaybackFinished", lambda e: e["playback"]["media_uri"] == "sound:two")
    started = [e["playback"]["media_uri"] for e in ari.events if e["type"] == "PlaybackStarted"]
    finished = [e["type"] for e in ari.events if e["type"].startswith("Playback")]
    assert started == ["sound:one", "sound:two"]
    assert finished == [
        "PlaybackStarted",
        "PlaybackFinished",
        "PlaybackStarted",
        "PlaybackFinished",
    ]
