"""The consult target of an attended transfer is a leg of the call (issue 14): role
``transfer_target`` while it rings and consults, then it takes a party's place or is dropped.
What callers and API users see stays as before (parties only)."""

from __future__ import annotations

from typing import Any

from ari_metaflows.calls.leg import Role
from ari_metaflows.features.transfer import transfer_of
from ari_metaflows.metaflows.store import Owner

from ..helpers.engine_service import (
    ACCOUNT,
    FAST,
    Service,
    connected_call,
    sim_only,
    the_call,
    wait_until,
)

TARGET = "1234"


async def _ringing(service: Service) -> tuple[Any, Any, Any]:
    await service.document(
        Owner.account(ACCOUNT),
        numbers={
            "4": {"module": "transfer", "data": {"target": TARGET, "transfer_type": "attended"}}
        },
    )
    alice, bob = await connected_call(service)
    carol = service.driver.add_phone(TARGET)
    await alice.press("*4", FAST)
    await alice.wait_hears("ringing")
    return alice, bob, carol


async def test_the_target_is_a_leg_of_the_call_until_it_replaces_the_transferor(
    service: Service,
) -> None:
    alice, bob, carol = await _ringing(service)
    call = the_call(service)
    await wait_until(lambda: Role.TRANSFER_TARGET in call.legs)
    target = call.legs[Role.TRANSFER_TARGET]
    assert target.role == "transfer_target"
    assert target.party is False
    assert service.engine.active_legs() == 2  # parties only, as before
    assert [leg["role"] for leg in service.engine.legs_of_account(ACCOUNT)] == [
        "caller",
        "callee",
    ]
    # "ringing" once Asterisk took the dial request (on a real one, the target's Local channel
    # is in the app before that, and the dial may be retried while its Stasis control starts)
    await wait_until(
        lambda: call.describe("caller")["transfer"] == {"state": "ringing", "extension": TARGET}
    )
    await carol.answer()
    await alice.wait_hears("party", TARGET)
    await alice.hangup()  # the transferor leaves: the target takes its place
    await bob.wait_hears("party", TARGET)
    await wait_until(lambda: transfer_of(call) is None)
    assert Role.TRANSFER_TARGET not in call.legs
    assert call.legs["caller"] is target
    assert (target.role, target.party) == ("caller", True)
    await bob.hangup()
    await service.wait_no_calls()


async def test_a_taken_back_target_leaves_the_call(service: Service) -> None:
    alice, bob, carol = await _ringing(service)
    call = the_call(service)
    await wait_until(lambda: Role.TRANSFER_TARGET in call.legs)
    target_id = call.legs[Role.TRANSFER_TARGET].channel_id
    await alice.press("*1", FAST)  # takeback while it rings
    await alice.wait_hears("party", "bob")
    await carol.wait_idle()
    await wait_until(lambda: Role.TRANSFER_TARGET not in call.legs)
    assert [leg.role for leg in call.legs.values()] == ["caller", "callee"]
    assert target_id not in {leg.channel_id for leg in call.legs.values()}
    await bob.hangup()
    await service.wait_no_calls()


async def test_the_transferor_leaving_while_the_consultation_is_set_up_hands_over(
    service: Service,
) -> None:
    """Found on Asterisk 22 under load: the target answered and was already in the consult
    bridge when the transferor hung up, so adding the transferor failed; the transfer took
    that for "the target still rings" and the transferee stayed on hold until the ring
    timeout hung up both."""
    driver = sim_only(service.driver)
    alice, bob, carol = await _ringing(service)
    call = the_call(service)
    await wait_until(lambda: getattr(transfer_of(call), "state", None) == "ringing")
    target = call.legs[Role.TRANSFER_TARGET]
    # The consult bridge takes the target, then the transferor: both requests wait, and the
    # transferor hangs up while the target's is in flight.
    driver.sim.core.stalls["POST", "/ari/bridges/[^/]+/addChannel"] = 0.3
    await carol.answer()
    await wait_until(lambda: getattr(transfer_of(call), "consult_bridge", None) is not None)
    await alice.hangup()
    await bob.wait_hears("party", TARGET)
    await wait_until(lambda: transfer_of(call) is None)
    assert call.legs["caller"] is target
    assert (target.role, target.party) == ("caller", True)
    await bob.hangup()
    await carol.wait_idle()
    await service.wait_no_calls()


async def test_a_consultation_asterisk_refuses_takes_back(service: Service) -> None:
    """The target answered but Asterisk refuses the consult bridge (a 500): the transfer
    gives up as when the target fails, the parties talk again and the target is hung up;
    the refusal did not escape the transfer's task."""
    driver = sim_only(service.driver)
    alice, bob, carol = await _ringing(service)
    call = the_call(service)
    await wait_until(lambda: getattr(transfer_of(call), "state", None) == "ringing")
    driver.sim.core.garbled["POST", "/ari/bridges"] = (500, '{"error": "Allocation failed"}')
    await carol.answer()
    await alice.wait_hears("party", "bob")
    await bob.wait_hears("party", "alice")
    await carol.wait_idle()
    await wait_until(lambda: transfer_of(call) is None)
    assert Role.TRANSFER_TARGET not in call.legs
    del driver.sim.core.garbled["POST", "/ari/bridges"]
    await bob.hangup()
    await service.wait_no_calls()
