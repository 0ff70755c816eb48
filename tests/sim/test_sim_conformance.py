"""The simulator against real Asterisk: its declarations vs ``../shared/ari-api-docs``, its
events vs ``../shared/ari-captures``. Skipped when ``../shared`` is absent
(``METAFLOWS_SHARED_DIR`` overrides ``../shared``, for git worktrees)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from ari_metaflows.sim import SimulatedAsteriskServer, StasisApp
from ari_metaflows.sim.operations import EVENT_MODELS, OPERATIONS, api_declaration

from ..conftest import PROJECT_ROOT
from ..helpers.raw_ari import RawAri

SHARED = Path(os.environ.get("METAFLOWS_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
DOCS = SHARED / "ari-api-docs"
CAPTURES = SHARED / "ari-captures"

pytestmark = pytest.mark.skipif(not DOCS.is_dir(), reason="../shared is not present")

# Events real Asterisk sends that the simulator deliberately does not produce; the engine must
# not depend on them (it ignores unknown event types).
NOT_SIMULATED = {"ChannelCallerId", "ChannelConnectedLine", "ChannelDialplan"}


def real_docs() -> dict[str, dict[str, Any]]:
    docs = {path.stem: json.loads(path.read_text()) for path in DOCS.glob("*.json")}
    docs.pop("resources", None)  # the listing, not a declaration
    return docs


def real_operations() -> dict[tuple[str, str, str], dict[str, Any]]:
    found = {}
    for resource, doc in real_docs().items():
        for api in doc.get("apis", []):
            for op in api["operations"]:
                found[(resource, api["path"], op["httpMethod"])] = op
    return found


def captured_events() -> list[dict[str, Any]]:
    events = []
    for path in sorted(CAPTURES.glob("*.jsonl")):
        events += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return events


def test_every_served_operation_exists_in_asterisk() -> None:
    real = real_operations()
    for op in OPERATIONS:
        key = (op.resource, op.path, op.method)
        assert key in real, f"{op.method} {op.path} is not an ARI operation"
        theirs = real[key]
        assert op.nickname == theirs["nickname"], op
        assert op.response_class == theirs["responseClass"], op
        assert op.websocket == (theirs.get("upgrade") == "websocket")
        their_params = {p["name"]: p for p in theirs.get("parameters", [])}
        for param in op.params:
            assert param.name in their_params, f"{op.nickname} has no parameter {param.name}"
            their = their_params[param.name]
            assert param.param_type == their["paramType"], (op.nickname, param.name)
            assert param.required == bool(their.get("required")), (op.nickname, param.name)
            if param.param_type != "path":
                assert param.data_type == their["dataType"], (op.nickname, param.name)


def test_declared_event_fields_exist_in_asterisk_models() -> None:
    models = real_docs()["events"]["models"]
    for event, fields in EVENT_MODELS.items():
        assert event in models, event
        properties = models[event]["properties"]
        for name, kind in fields.items():
            assert name in properties, f"{event}.{name}"
            assert properties[name]["type"] == kind, f"{event}.{name}"


def test_our_declarations_load_in_aioari_shape() -> None:
    for resource in ("channels", "bridges", "events"):
        declaration = api_declaration(resource, "http://h/ari")
        assert declaration is not None
        for api in declaration["apis"]:
            for op in api["operations"]:
                assert {"httpMethod", "nickname", "responseClass", "parameters"} <= set(op)


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and leaf types."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return "list"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def assert_covers(ours: Any, theirs: Any, where: str) -> None:
    """Every field real Asterisk sent is in ours, with the same kind of value."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{where}: expected an object"
        for key, value in theirs.items():
            if key == "_t":  # added by the capturing tool, not Asterisk
                continue
            assert key in ours, f"{where}.{key} is missing"
            assert_covers(ours[key], value, f"{where}.{key}")
    else:
        assert shape(ours) == shape(theirs), f"{where}: {shape(ours)} != {shape(theirs)}"


async def full_tour(sim: SimulatedAsteriskServer, ari: RawAri) -> None:
    """Drive every kind of event the engine relies on through the simulator."""
    sim.core.dialplan.add("default", "100", StasisApp("metaflows", ("100",)))
    caller = sim.add_phone("sipp", variables={"METAFLOWS_ACCOUNT_ID": "acc1"})
    sim.add_phone("sipp2", on_call="answer", ring_first=False)
    channel = caller.call("100")
    await ari.wait_event("StasisStart")
    await ari.request("POST", f"/channels/{channel.id}/answer")
    status, callee = await ari.request(
        "POST",
        "/channels/create",
        endpoint="PJSIP/sipp2",
        app="metaflows",
        appArgs="callee",
        originator=channel.id,
    )
    assert status == 200
    await ari.request("POST", f"/channels/{callee['id']}/dial", caller=channel.id)
    await ari.wait_event("StasisStart", lambda e: e["args"] == ["callee"])
    status, bridge = await ari.request("POST", "/bridges", type="mixing,dtmf_events")
    await ari.request(
        "POST", f"/bridges/{bridge['id']}/addChannel", channel=f"{channel.id},{callee['id']}"
    )
    await ari.wait_event("ChannelEnteredBridge", lambda e: len(e["bridge"]["channels"]) == 2)
    await caller.press("1")
    await ari.wait_event("ChannelDtmfReceived")
    await ari.request("POST", f"/channels/{channel.id}/variable", variable="X", value="1")
    status, _ = await ari.request("POST", f"/channels/{channel.id}/play", media="sound:beep")
    assert status == 201
    await ari.wait_event("PlaybackFinished")
    status, _ = await ari.request(
        "POST", f"/bridges/{bridge['id']}/record", name="tour", format="wav"
    )
    assert status == 201
    await ari.wait_event("RecordingStarted")
    await ari.request("POST", "/recordings/live/tour/stop")
    await ari.wait_event("RecordingFinished")
    await caller.hangup()
    await ari.wait_event("StasisEnd", lambda e: e["channel"]["id"] == channel.id)
    await ari.request("DELETE", f"/channels/{callee['id']}")
    await ari.wait_event("ChannelDestroyed", lambda e: e["channel"]["id"] == callee["id"])
    await ari.request("DELETE", f"/bridges/{bridge['id']}")
    await ari.wait_event("BridgeDestroyed")


async def test_events_carry_every_field_real_asterisk_sends() -> None:
    captured: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in captured_events():
        captured[event["type"]].append(event)
    async with (
        SimulatedAsteriskServer() as sim,
        RawAri(sim.url, sim.username, sim.password, "metaflows") as ari,
    ):
        await full_tour(sim, ari)
    produced: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in ari.events:
        produced[event["type"]].append(event)
    missing = set(captured) - set(produced) - NOT_SIMULATED
    assert not missing, f"captured event types the simulator never produced: {missing}"
    for event_type, ours in produced.items():
        for theirs in captured.get(event_type, []):
            # Compare with the simulated event of the same flavour (e.g. soft hangups).
            candidates = [e for e in ours if set(e) >= set(theirs) - {"_t"}] or ours
            assert_covers(candidates[0], theirs, event_type)


async def bridged_sip_call(
    sim: SimulatedAsteriskServer, ari: RawAri, bridge_type: str
) -> tuple[Any, Any, dict[str, Any]]:
    """The captures' setup: sipp calls in, the app dials sipp2 (answers at once), both bridged."""
    sim.core.dialplan.add("default", "100", StasisApp("metaflows", ("100",)))
    caller = sim.add_phone("sipp")
    sim.add_phone("sipp2", on_call="answer", ring_first=False)
    channel = caller.call("100")
    await ari.wait_event("StasisStart")
    await ari.request("POST", f"/channels/{channel.id}/answer")
    _, callee = await ari.request(
        "POST", "/channels/create", endpoint="PJSIP/sipp2", app="metaflows", appArgs="callee"
    )
    await ari.request("POST", f"/channels/{callee['id']}/dial", caller=channel.id)
    await ari.wait_event("StasisStart", lambda e: e["args"] == ["callee"])
    _, bridge = await ari.request("POST", "/bridges", type=bridge_type)
    await ari.request(
        "POST", f"/bridges/{bridge['id']}/addChannel", channel=f"{channel.id},{callee['id']}"
    )
    await ari.wait_event("ChannelEnteredBridge", lambda e: len(e["bridge"]["channels"]) == 2)
    return caller, channel, callee


@pytest.mark.parametrize(
    ("bridge_type", "capture"),
    [
        ("mixing", "sip-bridge-mixing-no-dtmf-events.jsonl"),
        ("mixing,dtmf_events", "sip-bridge-mixing-dtmf_events.jsonl"),
    ],
)
async def test_sip_bridge_dtmf_events_match_the_captures(bridge_type: str, capture: str) -> None:
    """The trap: two SIP legs in a `mixing` bridge without dtmf_events raise no DTMF events."""
    real = [json.loads(line) for line in (CAPTURES / capture).read_text().splitlines()]
    real_digits = [e["digit"] for e in real if e["type"] == "ChannelDtmfReceived"]
    async with (
        SimulatedAsteriskServer() as sim,
        RawAri(sim.url, sim.username, sim.password, "metaflows") as ari,
    ):
        caller, channel, _ = await bridged_sip_call(sim, ari, bridge_type)
        await caller.press("123")
        await caller.hangup()
        await ari.wait_event("StasisEnd", lambda e: e["channel"]["id"] == channel.id)
    ours = [e["digit"] for e in ari.events if e["type"] == "ChannelDtmfReceived"]
    assert ours == real_digits
    assert sim.core.phones["sipp2"].heard_dtmf == list("123")  # the callee hears them anyway
    our_left = next(e for e in ari.events if e["type"] == "ChannelLeftBridge")
    real_left = next(e for e in real if e["type"] == "ChannelLeftBridge")
    assert our_left["bridge"]["technology"] == real_left["bridge"]["technology"]


def sequence(events: list[dict[str, Any]], channel_id: str, ignore: set[str]) -> list[str]:
    return [
        e["type"]
        for e in events
        if e["type"] not in ignore
        and (e.get("channel") or e.get("peer") or {}).get("id") == channel_id
    ]


async def test_created_channel_and_hangup_sequences_match_the_capture() -> None:
    """Create + dial + answer, and hangups from both sides, in Asterisk's order."""
    real = [
        json.loads(line)
        for line in (CAPTURES / "sip-bridge-mixing-dtmf_events.jsonl").read_text().splitlines()
    ]
    ignore = {
        "ChannelVarset",
        "ChannelConnectedLine",
        "ChannelEnteredBridge",
        "ChannelDtmfReceived",
    }
    real_caller = real[0]["channel"]["id"]
    real_callee = next(e["peer"]["id"] for e in real if e["type"] == "Dial")
    async with (
        SimulatedAsteriskServer() as sim,
        RawAri(sim.url, sim.username, sim.password, "metaflows") as ari,
    ):
        caller, channel, callee = await bridged_sip_call(sim, ari, "mixing,dtmf_events")
        await caller.hangup()
        await ari.wait_event("StasisEnd", lambda e: e["channel"]["id"] == channel.id)
        await ari.request("DELETE", f"/channels/{callee['id']}")
        await ari.wait_event("ChannelDestroyed", lambda e: e["channel"]["id"] == callee["id"])
    assert sequence(ari.events, callee["id"], ignore) == sequence(real, real_callee, ignore)
    ours = sequence(ari.events, channel.id, ignore)
    theirs = sequence(real, real_caller, ignore)
    assert ours[: len(theirs)] == theirs
    hangups = [e for e in ari.events if e["type"] == "ChannelHangupRequest"]
    # The phone hung up: no cause; the app hung up: the soft-hangup flag.
    assert "cause" not in hangups[0]
    assert "soft" not in hangups[0]
    assert hangups[1]["cause"] == 32
    assert hangups[1]["soft"] is True
