"""Call recording, end to end (SPEC §7; issue 5).

Observed as people would: who hears whom after each step, plus the ARI requests made, the rows
written and what is left in Asterisk (no orphan channel, bridge, playback or recording).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ari_metaflows.backoff import Backoff
from ari_metaflows.db.database import Database
from ari_metaflows.features.recording import (
    RecordingFeature,
    current_recording,
    recording_masked,
)
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.recordings import Recording, RecordingJournal, RecordingStore
from ari_metaflows.testing.eventually import eventually
from ari_metaflows.testing.scenario import Driver, SimDriver

from ..helpers.engine_service import (
    ACCOUNT,
    FAST,
    Service,
    connected_call,
    requests_to,
    start_service,
    stop_service,
    wait_until,
)
from ..helpers.tcp_proxy import TcpProxy

TARGET = "1234"


def sim_core(service: Service) -> Any:
    driver = service.driver
    return driver.sim.core if isinstance(driver, SimDriver) else None


async def record_doc(service: Service) -> None:
    await service.document(
        Owner.user(ACCOUNT, "u-alice"),
        numbers={
            "9": {"module": "record_call", "data": {"label": "card"}},  # toggle by default
            "8": {"module": "record_call", "data": {"action": "start", "format": "wav"}},
            "7": {"module": "record_call", "data": {"action": "stop"}},
            "6": {"module": "record_call", "data": {"action": "mask"}},
            "5": {"module": "record_call", "data": {"action": "unmask"}},
            "4": {"module": "transfer", "data": {"target": TARGET}},
        },
    )


async def rows(service: Service, db: Database) -> list[Recording]:
    assert await service.journal.flush(timeout=5)
    page = await RecordingStore(db).page(ACCOUNT)
    return page.recordings


async def ended_rows(service: Service, db: Database, count: int = 1) -> list[Recording]:
    """The rows once ``count`` exist and none is still recording. The call forgets a recording
    as soon as it is asked to stop, but its row ends only after Asterisk answers the stop (and
    a call's end runs after the call has gone): on a real Asterisk that comes later."""
    return await eventually(
        lambda: rows(service, db),
        lambda found: len(found) == count and all(r.state != "recording" for r in found),
        what=f"{count} ended recording row(s)",
    )


async def test_toggle_twice_records_both_parties_and_completes_the_row(
    service: Service, db: Database
) -> None:
    await record_doc(service)
    alice, _bob = await connected_call(service)
    call = next(iter(service.engine.calls.values()))
    await alice.press("*9", FAST)
    await wait_until(lambda: current_recording(call) is not None)
    (live,) = await rows(service, db)
    assert (live.state, live.owner_type, live.owner_id, live.label) == (
        "recording",
        "user",
        "u-alice",
        "card",
    )
    assert live.call_id == call.id
    assert sorted(live.legs) == sorted(leg.channel_id for leg in call.legs.values() if leg.party)
    await asyncio.sleep(0.3)
    await alice.press("*9", FAST)
    await wait_until(lambda: current_recording(call) is None)
    (done,) = await ended_rows(service, db)
    assert done.id == live.id
    assert done.state == "finished"
    assert done.ended_at is not None
    assert done.duration is not None
    assert done.duration > 0.2
    core = sim_core(service)
    if core is not None:
        *_retried, request = requests_to(service, "/record")  # repeated while the snoop
        assert {q["name"] for q in _retried} <= {done.name}  # channel enters Stasis
        assert request["name"] == done.name
        assert request["format"] == "wav"
        assert request["maxDurationSeconds"] == "10800"
        assert request["ifExists"] == "fail"
        stored = core.stored_recordings[done.name]
        assert stored.heard == {"alice", "bob"}


async def test_start_twice_makes_one_recording_and_stop_ends_it(
    service: Service, db: Database
) -> None:
    await record_doc(service)
    alice, _bob = await connected_call(service)
    call = next(iter(service.engine.calls.values()))
    await alice.press("*8", FAST)
    await wait_until(lambda: current_recording(call) is not None)
    first = current_recording(call)
    await alice.press("*8", FAST)
    await service.wait_matches(2)
    await asyncio.sleep(0.1)
    assert current_recording(call) is first
    # one recording (a record request may be repeated while the snoop channel enters Stasis)
    assert len({q["name"] for q in requests_to(service, "/record") if q}) in (0, 1)
    await alice.press("*7", FAST)
    await wait_until(lambda: current_recording(call) is None)
    (row,) = await ended_rows(service, db)
    assert row.state == "finished"


async def test_mask_and_unmask_silence_part_of_the_recording(
    service: Service, db: Database
) -> None:
    core = sim_core(service)
    await record_doc(service)
    alice, _bob = await connected_call(service)
    call = next(iter(service.engine.calls.values()))
    await alice.press("*8", FAST)
    await wait_until(lambda: current_recording(call) is not None)
    await alice.press("*6", FAST)
    await wait_until(lambda: recording_masked(call))
    await asyncio.sleep(0.3)
    await alice.press("*5", FAST)
    await wait_until(lambda: not recording_masked(call))
    current = current_recording(call)
    name = current.name if current is not None else ""
    await alice.press("*7", FAST)
    await wait_until(lambda: current_recording(call) is None)
    if core is not None:
        assert core.stored_recordings[name].muted_seconds >= 0.25


async def test_hangup_mid_recording_completes_the_row(service: Service, db: Database) -> None:
    await record_doc(service)
    alice, bob = await connected_call(service)
    call = next(iter(service.engine.calls.values()))
    core = sim_core(service)
    await alice.press("*9", FAST)
    await wait_until(lambda: current_recording(call) is not None)
    if core is not None:  # Asterisk has begun writing the file (a hangup before leaves none)
        await wait_until(lambda: any(r.state == "recording" for r in core.live_recordings.values()))
    await bob.hangup()
    await service.wait_no_calls()
    (row,) = await ended_rows(service, db)
    assert row.state == "finished"
    assert row.duration is not None
    if core is not None:
        assert row.name in core.stored_recordings
        assert not core.live_recordings


async def test_transfer_mid_recording_completes_the_row(service: Service, db: Database) -> None:
    await record_doc(service)
    alice, _bob = await connected_call(service)
    service.driver.add_phone(TARGET)
    call = next(iter(service.engine.calls.values()))
    await alice.press("*9", FAST)
    await wait_until(lambda: current_recording(call) is not None)
    await alice.press("*4", FAST)
    await alice.wait_idle()
    (row,) = await ended_rows(service, db)
    assert row.state == "finished"
    core = sim_core(service)
    if core is not None:
        assert not core.live_recordings


async def test_a_refused_recording_gets_a_failed_row_and_the_call_goes_on(
    service: Service, db: Database
) -> None:
    core = sim_core(service)
    if core is None:
        pytest.skip("needs the simulator")
    await record_doc(service)
    alice, _bob = await connected_call(service)
    call = next(iter(service.engine.calls.values()))
    await alice.press("*8", FAST)
    await wait_until(lambda: current_recording(call) is not None)
    current = current_recording(call)
    name = current.name if current is not None else ""
    await alice.press("*7", FAST)
    await wait_until(lambda: current_recording(call) is None)
    # Asterisk refusing the snoop channel (the presser's channel is gone there) fails cleanly.
    core.garbled[("POST", r"/ari/channels/[^/]+/snoop/[^/]+")] = (
        404,
        '{"message": "Channel not found"}',
    )
    await alice.press("*8", FAST)
    await service.wait_matches(3)
    await asyncio.sleep(0.2)
    assert current_recording(call) is None
    found = await ended_rows(service, db, 2)
    assert {r.state for r in found} == {"finished", "failed"}
    failed = next(r for r in found if r.state == "failed")
    assert failed.failure_cause
    assert "404" in failed.failure_cause
    assert name in core.stored_recordings


async def test_rows_survive_a_database_outage_and_a_restart(
    driver: Driver,
    database_url: str,
    db: Database,
    tmp_path: Path,
) -> None:
    proxy = TcpProxy.for_url(database_url)
    await proxy.start()
    flaky = Database(proxy.url_for(database_url))
    await flaky.open()
    journal_path = tmp_path / "journal.jsonl"
    service = await start_service(driver, database_url, db, journal_path)
    # The journal writes through the proxy; the metaflow side keeps the direct connection.
    await service.journal.close()
    service.journal = RecordingJournal(
        RecordingStore(flaky), journal_path, Backoff(initial=0.05, maximum=0.1)
    )
    await service.journal.start()
    recording = service.engine.features.get("recording")
    assert isinstance(recording, RecordingFeature)
    recording.journal = service.journal
    try:
        await record_doc(service)
        alice, bob = await connected_call(service)
        call = next(iter(service.engine.calls.values()))
        await proxy.cut()
        await alice.press("*9", FAST)
        await wait_until(lambda: current_recording(call) is not None)
        await asyncio.sleep(0.2)
        await alice.press("*9", FAST)
        await wait_until(lambda: current_recording(call) is None)
        await alice.press("*9", FAST)  # a second recording, still during the outage
        await wait_until(lambda: current_recording(call) is not None)
        await bob.hangup()
        await service.wait_no_calls()
        await asyncio.sleep(0.3)
        assert service.journal.pending == 2
        assert service.journal.failed_attempts > 0
        assert (await RecordingStore(db).page(ACCOUNT)).recordings == []
        # The service stops while the database is still down: rows stay in the journal file.
        await service.journal.close()
        assert journal_path.read_text().count("\n") >= 4
        # A new instance starts with the database back: the journal is replayed.
        await proxy.restore()
        replay = RecordingJournal(RecordingStore(flaky), journal_path)
        await replay.start()
        try:
            assert await replay.flush(timeout=10)
        finally:
            await replay.close()
        stored = (await RecordingStore(db).page(ACCOUNT)).recordings
        assert sorted(r.state for r in stored) == ["finished", "finished"]
        assert all(r.ended_at is not None and r.duration is not None for r in stored)
        assert journal_path.read_text() == ""
    finally:
        await driver.hang_up_all()
        await stop_service(service)
        await flaky.close()
        await proxy.close()
