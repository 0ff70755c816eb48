"""Transfer (blind, attended, takeback), end to end (SPEC §6; issue 5).

Observed as people would: who hears whom after each step, plus the ARI requests made, the rows
written and what is left in Asterisk (no orphan channel, bridge, playback or recording).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ari_metaflows.features.recording import (
    current_recording,
)
from ari_metaflows.features.transfer import transfer_of
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.testing.scenario import SimDriver

from ..helpers.engine_service import (
    ACCOUNT,
    ADMIN,
    FAST,
    Service,
    connected_call,
    requests_to,
    sim_only,
    wait_until,
)

TARGET = "1234"


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
    continues: list[dict[str, str] | None] = [*requests_to(service, "/continue")]
    (cont,) = continues or [None]
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
    current = current_recording(call)
    assert current is not None
    assert listed["data"]["recording"] == current.id

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
