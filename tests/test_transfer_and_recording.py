"""Transfer (blind, attended, takeback) and call recording, end to end (SPEC §6, §7; issue 5).

Observed as people would: who hears whom after each step, plus the ARI requests made, the rows
written and what is left in Asterisk (no orphan channel, bridge, playback or recording).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ari_metaflows.auth.tokens import TokenStore
from ari_metaflows.db.database import Database
from ari_metaflows.features.recording import (
    RecordingFeature,
    current_recording,
    recording_masked,
)
from ari_metaflows.features.transfer import transfer_of
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.recordings import JournalTimeouts, Recording, RecordingJournal, RecordingStore
from ari_metaflows.testing.scenario import Driver, SimDriver

from .helpers.engine_service import (
    ACCOUNT,
    ADMIN,
    FAST,
    Service,
    api_client,
    connected_call,
    requests_to,
    sim_only,
    start_service,
    stop_service,
    wait_until,
)
from .helpers.tcp_proxy import TcpProxy

TARGET = "1234"


@pytest.fixture
async def api(service: Service, db: Database, tokens: TokenStore) -> AsyncIterator[Any]:
    async with api_client(service, tokens, db) as client:
        yield client


def sim_core(service: Service) -> Any:
    driver = service.driver
    return driver.sim.core if isinstance(driver, SimDriver) else None


async def transfer_doc(service: Service, **data: Any) -> None:
    await service.document(
        Owner.account(ACCOUNT),
        numbers={
            "4": {"module": "transfer", "data": {"target": TARGET, **data}},
            "9": {"module": "play", "data": {"id": "beep"}},
        },
        patterns={"2(\\d+)": {"module": "transfer", "data": {"takeback_dtmf": "*1"}}},
    )


async def assert_nothing_left(service: Service, bridges: int) -> None:
    """No stray bridge, playback or recording in Asterisk (simulator only)."""
    core = sim_core(service)
    if core is None:
        return
    await core.wait_for(lambda: len(core.bridges) == bridges)
    await core.wait_for(lambda: not any(p.state == "playing" for p in core.playbacks.values()))
    assert not core.live_recordings


# -- blind ------------------------------------------------------------------------------------


async def test_seed_example_star_2_1234_blind_transfers_the_other_party(
    service: Service,
) -> None:
    await transfer_doc(service)
    alice, bob = await connected_call(service)
    carol = service.driver.add_phone(TARGET)
    await alice.press("*21234", FAST)
    (match,) = await service.wait_matches(1)
    assert (match["kind"], match["module"], match["captures"]) == ("pattern", "transfer", ["1234"])
    await alice.wait_idle()  # the transferor is hung up
    await carol.answer()
    await bob.wait_hears("party", TARGET)
    await carol.wait_hears("party", "bob")
    (cont,) = requests_to(service, "/continue") or [None]
    if cont is not None:
        assert cont == {
            "context": service.driver.transfer_context,
            "extension": "1234",
            "priority": "1",
        }
        await service.wait_no_calls()  # bob left the app: the call is over for us
        await assert_nothing_left(service, bridges=0)


async def test_blind_transfer_to_data_target_when_nothing_is_captured(service: Service) -> None:
    await transfer_doc(service)
    alice, bob = await connected_call(service)
    carol = service.driver.add_phone(TARGET)
    await bob.press("*4", FAST)  # the callee transfers the caller
    await bob.wait_idle()
    await carol.answer()
    await alice.wait_hears("party", TARGET)


async def test_blind_transfer_to_a_missing_extension_leaves_the_caller_to_the_dialplan(
    service: Service,
) -> None:
    sim_only(service.driver)
    await transfer_doc(service, target="5555")
    alice, bob = await connected_call(service)
    await alice.press("*4", FAST)
    await alice.wait_idle()
    await bob.wait_idle()  # the dialplan has no 5555: Asterisk hangs up, not us
    await service.wait_no_calls()
    await assert_nothing_left(service, bridges=0)


# -- attended ----------------------------------------------------------------------------------


async def attended_setup(service: Service, **data: Any) -> tuple[Any, Any, Any]:
    await transfer_doc(service, transfer_type="attended", **data)
    alice, bob = await connected_call(service)
    carol = service.driver.add_phone(TARGET)
    await alice.press("*4", FAST)
    await service.wait_matches(1)
    await bob.wait_hears("moh")
    await alice.wait_hears("ringing")
    return alice, bob, carol


async def test_attended_transfer_consults_then_hands_over(service: Service) -> None:
    alice, bob, carol = await attended_setup(service, moh="default")
    callee_id = next(iter(service.engine.calls.values())).legs["callee"].channel_id
    await carol.answer()
    await alice.wait_hears("party", TARGET)
    await carol.wait_hears("party", "alice")
    await bob.wait_hears("moh", "default")  # still held while alice and carol talk
    await alice.hangup()
    await bob.wait_hears("party", TARGET)
    await carol.wait_hears("party", "bob")
    call = next(iter(service.engine.calls.values()))
    assert transfer_of(call) is None
    assert call.legs["callee"].channel_id == callee_id  # bob stays
    assert call.legs["caller"].name.startswith(f"Local/{TARGET}@")  # the target replaced alice
    await assert_nothing_left(service, bridges=1)
    creates = requests_to(service, "/channels/create")
    if creates:
        assert creates[-1]["endpoint"] == f"Local/1234@{service.driver.transfer_context}/n"
    # The call goes on normally: bob hanging up ends it for everyone.
    await bob.hangup()
    await carol.wait_idle()
    await service.wait_no_calls()
    await assert_nothing_left(service, bridges=0)


async def test_takeback_after_answer_returns_the_transferor(service: Service) -> None:
    alice, bob, carol = await attended_setup(service)
    await carol.answer()
    await alice.wait_hears("party", TARGET)
    await alice.press("*1", FAST)
    await carol.wait_idle()
    await alice.wait_hears("party", "bob")
    await bob.wait_hears("party", "alice")
    await assert_nothing_left(service, bridges=1)
    # Codes work again after the takeback.
    await alice.press("*9", FAST)
    await service.wait_matches(2)


async def test_takeback_while_ringing(service: Service) -> None:
    alice, bob, carol = await attended_setup(service)
    await alice.press("*1", FAST)
    await alice.wait_hears("party", "bob")
    await bob.wait_hears("party", "alice")
    await carol.wait_idle()
    await assert_nothing_left(service, bridges=1)


async def test_no_answer_within_timeout_returns_the_transferor(service: Service) -> None:
    alice, bob, carol = await attended_setup(service, timeout=1000)
    await alice.wait_hears("party", "bob", timeout=4)
    await bob.wait_hears("party", "alice")
    await carol.wait_idle()
    await assert_nothing_left(service, bridges=1)


async def test_target_rejecting_returns_the_transferor(service: Service) -> None:
    alice, bob, carol = await attended_setup(service)
    await carol.reject()
    await alice.wait_hears("party", "bob")
    await bob.wait_hears("party", "alice")
    await assert_nothing_left(service, bridges=1)


async def test_transferor_hanging_up_while_ringing_connects_on_answer(service: Service) -> None:
    alice, bob, carol = await attended_setup(service)
    await alice.hangup()
    await bob.wait_hears("moh")
    await carol.answer()
    await bob.wait_hears("party", TARGET)
    await carol.wait_hears("party", "bob")
    await assert_nothing_left(service, bridges=1)


async def test_transferor_gone_and_target_failing_ends_the_call(service: Service) -> None:
    alice, bob, carol = await attended_setup(service)
    await alice.hangup()
    await carol.reject()
    await bob.wait_idle()
    await service.wait_no_calls()
    await assert_nothing_left(service, bridges=0)


async def test_transferee_hanging_up_leaves_the_consultation_as_the_call(
    service: Service,
) -> None:
    alice, bob, carol = await attended_setup(service)
    await carol.answer()
    await alice.wait_hears("party", TARGET)
    await bob.hangup()
    await asyncio.sleep(0.2)
    await alice.wait_hears("party", TARGET)
    await carol.wait_hears("party", "alice")
    await assert_nothing_left(service, bridges=1)


async def test_transferors_digits_go_to_takeback_not_to_the_collector(
    service: Service,
) -> None:
    alice, _bob, carol = await attended_setup(service)
    await alice.press("*9", FAST)  # a code of alice's metaflows, while transferring
    await asyncio.sleep(0.3)
    assert len(service.matches()) == 1
    core = sim_core(service)
    if core is not None:
        assert not [q for q in requests_to(service, "/play") if q.get("media") == "sound:beep"]
    await carol.answer()
    await alice.wait_hears("party", TARGET)


# -- through the channels API -------------------------------------------------------------------


async def test_channels_api_transfers_and_records(service: Service, api: Any) -> None:
    sim_only(service.driver)
    alice, bob = await connected_call(service)
    carol = service.driver.add_phone(TARGET)
    call = next(iter(service.engine.calls.values()))
    alice_leg = call.legs["caller"].channel_id
    url = f"/v2/accounts/{ACCOUNT}/channels/{alice_leg}"

    response = await api.post(url, json={"data": {"action": "record_call"}}, headers=ADMIN)
    assert response.status == 202
    await wait_until(lambda: current_recording(call) is not None)
    listed = await (await api.get(url, headers=ADMIN)).json()
    assert listed["data"]["recording"] == current_recording(call).id

    body = {"data": {"action": "transfer", "target": TARGET, "transfer_type": "attended"}}
    response = await api.post(url, json=body, headers=ADMIN)
    assert response.status == 202
    await bob.wait_hears("moh")
    await carol.answer()
    await alice.wait_hears("party", TARGET)
    await alice.hangup()
    await bob.wait_hears("party", TARGET)

    bad = {"data": {"action": "transfer", "transfer_type": "sideways"}}
    response = await api.post(url, json=bad, headers=ADMIN)
    assert response.status in (400, 404)  # alice's leg is gone (404) or the data is bad (400)


# -- recording -----------------------------------------------------------------------------------


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
    assert sorted(live.legs) == sorted(leg.channel_id for leg in call.legs.values())
    await asyncio.sleep(0.3)
    await alice.press("*9", FAST)
    await wait_until(lambda: current_recording(call) is None)
    (done,) = await rows(service, db)
    assert done.id == live.id
    assert done.state == "finished"
    assert done.ended_at is not None
    assert done.duration is not None
    assert done.duration > 0.2
    core = sim_core(service)
    if core is not None:
        (request,) = requests_to(service, "/record")
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
    assert len(requests_to(service, "/record")) in (0, 1)
    await alice.press("*7", FAST)
    await wait_until(lambda: current_recording(call) is None)
    (row,) = await rows(service, db)
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
    name = current_recording(call).name if current_recording(call) else ""
    await alice.press("*7", FAST)
    await wait_until(lambda: current_recording(call) is None)
    if core is not None:
        assert core.stored_recordings[name].muted_seconds >= 0.25


async def test_hangup_mid_recording_completes_the_row(service: Service, db: Database) -> None:
    await record_doc(service)
    alice, bob = await connected_call(service)
    call = next(iter(service.engine.calls.values()))
    await alice.press("*9", FAST)
    await wait_until(lambda: current_recording(call) is not None)
    await bob.hangup()
    await service.wait_no_calls()
    (row,) = await rows(service, db)
    assert row.state == "finished"
    assert row.duration is not None
    core = sim_core(service)
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
    (row,) = await rows(service, db)
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
    name = current_recording(call).name if current_recording(call) else ""
    await alice.press("*7", FAST)
    await wait_until(lambda: current_recording(call) is None)
    # Asking Asterisk to record into a bridge that is gone fails cleanly.
    call.bridge_id = "no-such-bridge"
    await alice.press("*8", FAST)
    await service.wait_matches(3)
    await asyncio.sleep(0.2)
    assert current_recording(call) is None
    found = await rows(service, db)
    assert {r.state for r in found} == {"finished", "failed"}
    failed = next(r for r in found if r.state == "failed")
    assert failed.failure_cause
    assert "404" in failed.failure_cause
    assert name in core.stored_recordings


# -- the database down ---------------------------------------------------------------------------


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
        RecordingStore(flaky), journal_path, JournalTimeouts(retry_initial=0.05, retry_max=0.1)
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
