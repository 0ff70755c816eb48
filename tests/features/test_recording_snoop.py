"""Recording through a snoop channel (issue 20): the recorder is a leg of the call, never a call
and never a member of the call's bridge; it ends with the recording, the call or a transfer.

Simulator only: these look inside the simulated Asterisk (bridge members, snoop channels).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ari_metaflows.calls.leg import Role
from ari_metaflows.db.database import Database
from ari_metaflows.features.recording import current_recording, recording_masked
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.recordings import Recording, RecordingStore

from ..helpers.engine_service import (
    ACCOUNT,
    FAST,
    Service,
    connected_call,
    requests_to,
    wait_until,
)
from .test_recording import sim_core

TARGET = "1234"


async def record_doc(service: Service) -> None:
    await service.document(
        Owner.user(ACCOUNT, "u-alice"),
        numbers={
            "9": {"module": "record_call"},
            "6": {"module": "record_call", "data": {"action": "mask"}},
            "5": {"module": "record_call", "data": {"action": "unmask"}},
            "4": {"module": "transfer", "data": {"target": TARGET}},
        },
    )


def simulator(service: Service) -> Any:
    core = sim_core(service)
    if core is None:
        pytest.skip("needs the simulator")
    return core


def snoops(core: Any) -> list[Any]:
    return [c for c in core.channels.values() if c.tech == "Snoop"]


def recorder_legs(call: Any) -> dict[str, Any]:
    return {role: leg for role, leg in call.legs.items() if role.startswith(f"{Role.RECORDER}:")}


async def rows(service: Service, db: Database) -> list[Recording]:
    assert await service.journal.flush(timeout=5)
    return (await RecordingStore(db).page(ACCOUNT)).recordings


async def test_the_snoop_leg_belongs_to_the_call_and_the_bridge_stays_two_party(
    service: Service,
) -> None:
    core = simulator(service)
    await record_doc(service)
    alice, bob = await connected_call(service)
    (call,) = service.engine.calls.values()
    await alice.press("*9", FAST)
    await wait_until(lambda: any(r.state == "recording" for r in core.live_recordings.values()))
    (snoop,) = snoops(core)
    assert snoop.app == "metaflows"
    assert snoop.spy == "both"
    assert snoop.spied.id == call.legs["caller"].channel_id  # the presser's side
    (live,) = core.live_recordings.values()
    assert live.target is snoop
    (bridge,) = core.bridges.values()
    assert len(bridge.channels) == 2  # no recorder in the bridge: it stays a 2-party bridge
    assert not bridge.recordings
    # A leg of the call with the recorder role, not a party and not a call of its own.
    assert list(service.engine.calls.values()) == [call]
    ((_role, leg),) = recorder_legs(call).items()
    assert (leg.channel_id, leg.party) == (snoop.id, False)
    assert service.engine._by_channel[snoop.id] is call
    assert snoop.id not in {view["id"] for view in service.engine.legs_of_account(ACCOUNT)}
    start = next(
        e for e in core.event_log if e["type"] == "StasisStart" and e["channel"]["id"] == snoop.id
    )
    assert start["args"] == [Role.RECORDER, call.id]
    # It ends with the call: no snoop channel, no live recording, no call left.
    await bob.hangup()
    await service.wait_no_calls()
    await wait_until(lambda: not snoops(core) and not core.live_recordings)
    assert live.name in core.stored_recordings
    assert core.stored_recordings[live.name].heard == {"alice", "bob"}


async def test_toggling_twice_makes_two_files_each_with_both_parties(
    service: Service, db: Database
) -> None:
    core = simulator(service)
    await record_doc(service)
    alice, _bob = await connected_call(service)
    (call,) = service.engine.calls.values()
    names = []
    for _ in range(2):
        await alice.press("*9", FAST)
        await wait_until(lambda: any(r.state == "recording" for r in core.live_recordings.values()))
        current = current_recording(call)
        assert current is not None
        names.append(current.name)
        await asyncio.sleep(0.2)
        await alice.press("*9", FAST)
        await wait_until(lambda: current_recording(call) is None)
        await wait_until(lambda: not snoops(core))  # each recording's snoop is hung up
    assert len(set(names)) == 2
    for name in names:
        assert core.stored_recordings[name].heard == {"alice", "bob"}
    await wait_until(lambda: not recorder_legs(call))  # the leaving snoops were forgotten
    assert list(service.engine.calls.values()) == [call]
    (bridge,) = core.bridges.values()
    assert len(bridge.channels) == 2
    found = await rows(service, db)
    assert sorted(r.name for r in found) == sorted(names)
    assert {r.state for r in found} == {"finished"}


async def test_mask_and_unmask_mute_the_snoop_recording(service: Service) -> None:
    core = simulator(service)
    await record_doc(service)
    alice, _bob = await connected_call(service)
    (call,) = service.engine.calls.values()
    await alice.press("*9", FAST)
    await wait_until(lambda: any(r.state == "recording" for r in core.live_recordings.values()))
    (live,) = core.live_recordings.values()
    await alice.press("*6", FAST)
    await wait_until(lambda: recording_masked(call))
    assert live.muted
    assert live.target.tech == "Snoop"
    await asyncio.sleep(0.3)
    await alice.press("*5", FAST)
    await wait_until(lambda: not recording_masked(call))
    assert not live.muted
    await alice.press("*9", FAST)
    await wait_until(lambda: current_recording(call) is None)
    assert core.stored_recordings[live.name].muted_seconds >= 0.25
    mutes = [p for m, p, _ in core.requests if p.endswith(f"/recordings/live/{live.name}/mute")]
    assert len(mutes) == 2  # POST (mask) and DELETE (unmask)


async def test_a_transfer_ends_the_snoop_recording(service: Service, db: Database) -> None:
    core = simulator(service)
    await record_doc(service)
    alice, _bob = await connected_call(service)
    service.driver.add_phone(TARGET)
    await alice.press("*9", FAST)
    await wait_until(lambda: any(r.state == "recording" for r in core.live_recordings.values()))
    await alice.press("*4", FAST)
    await alice.wait_idle()
    await wait_until(lambda: not snoops(core) and not core.live_recordings)
    (row,) = await rows(service, db)
    assert row.state == "finished"


async def test_a_refused_record_hangs_the_snoop_up_and_fails_the_row(
    service: Service, db: Database
) -> None:
    core = simulator(service)
    await record_doc(service)
    alice, _bob = await connected_call(service)
    (call,) = service.engine.calls.values()
    core.garbled[("POST", r"/ari/channels/[^/]+/record")] = (
        422,
        '{"message": "The format specified is unknown on this system"}',
    )
    await alice.press("*9", FAST)
    await service.wait_matches(1)
    await wait_until(lambda: not snoops(core))
    assert current_recording(call) is None
    (row,) = await rows(service, db)
    assert row.state == "failed"
    assert row.failure_cause is not None
    assert "422" in row.failure_cause
    assert len(requests_to(service, "/record")) == 1  # not retried: only 409 is
    await wait_until(lambda: not recorder_legs(call))
    # The call goes on and a later recording works.
    core.garbled.clear()
    await alice.press("*9", FAST)
    await wait_until(lambda: any(r.state == "recording" for r in core.live_recordings.values()))


async def test_a_recorder_of_a_call_that_ended_is_hung_up_not_made_a_call(
    service: Service,
) -> None:
    core = simulator(service)
    alice, bob = await connected_call(service)
    (call,) = service.engine.calls.values()
    spied = core.channels[call.legs["caller"].channel_id]
    stray = core.snoop(
        spied,
        spy="both",
        whisper=None,
        app="metaflows",
        app_args=f"{Role.RECORDER},no-such-call",
        snoop_id="stray-snoop",
    )
    await wait_until(lambda: stray.gone)
    assert list(service.engine.calls.values()) == [call]
    await bob.hangup()
    await service.wait_no_calls()
    assert alice is not None


async def test_the_service_asks_for_the_event_types_it_uses_only(service: Service) -> None:
    core = simulator(service)
    allowed = core.event_filters.get("metaflows")
    assert allowed == service.engine.event_types
    assert {"StasisStart", "ChannelDtmfReceived", "RecordingFinished"} <= allowed
    alice, bob = await connected_call(service)
    await bob.hangup()
    await service.wait_no_calls()
    delivered = {e["type"] for e in core.event_log if e["application"] == "metaflows"}
    assert delivered <= allowed
    assert "ChannelHangupRequest" not in delivered  # left out by the filter
    assert alice is not None
