"""How a move's winner joins the call: with absorbDTMF from the start (``Call.join_bridge``),
and nothing it did while the takeover still ran is lost (the takeover hands back the events it
took but did not handle, ``Call.remove_interceptor(…, unhandled)``). Simulator only: the
requests Asterisk got and a stalled request are what show it."""

from __future__ import annotations

from ari_metaflows.calls.leg import Role
from ari_metaflows.features.takeover import takeover_of
from ari_metaflows.metaflows.store import Owner

from ..helpers.devices import Client, alice_at_her_desk_calls_bob, create_device, rings
from ..helpers.engine_service import (
    ACCOUNT,
    FAST,
    Service,
    requests_to,
    sim_only,
    the_call,
    wait_until,
)

CODES = {
    "5": {"module": "move", "data": {}},
    "9": {"module": "play", "data": {"id": "beep", "leg": "self"}},
}


def sip_device(phone: str) -> dict[str, object]:
    """alice's device reached on its own endpoint (``PJSIP/<phone>``): its channel is the
    leg, so what the phone presses is what the call receives."""
    return {"name": f"{phone}'s phone", "owner_id": "u-alice", "sip": {"username": phone}}


async def test_the_winner_joins_the_bridge_absorbing_its_digits_from_the_start(
    sim_service: Service, api: Client
) -> None:
    sim_only(sim_service.driver)
    cell = sim_service.driver.add_phone("alice-cell")
    await create_device(api, sip_device("alice-cell"))
    await sim_service.document(Owner.account(ACCOUNT), numbers=CODES)
    alice, bob, _ = await alice_at_her_desk_calls_bob(sim_service, api)
    await alice.press("*5", FAST)
    await wait_until(lambda: rings(the_call(sim_service)))
    await cell.answer()
    await bob.wait_hears("party", "alice-cell")
    call = the_call(sim_service)
    await wait_until(lambda: takeover_of(call) is None)
    moved = call.legs[Role.CALLER]
    adds = [q for q in requests_to(sim_service, "/addChannel") if q["channel"] == moved.channel_id]
    # One add, absorbing: a leg added again departs and re-enters the bridge (a gap in its
    # audio), and until then its digits would reach bob.
    assert [q.get("absorbDTMF") for q in adds] == ["true"]
    assert moved.absorbed
    await cell.press("*9", FAST)  # its codes work, and bob hears none of the digits
    await cell.wait_hears("playback", "sound:beep")
    assert await bob.heard_dtmf() == ""


async def test_what_the_winner_does_while_the_takeover_finishes_is_not_lost(
    sim_service: Service, api: Client
) -> None:
    driver = sim_only(sim_service.driver)
    cell = driver.add_phone("alice-cell")
    driver.add_phone("alice-home")
    await create_device(api, sip_device("alice-cell"))
    await create_device(api, sip_device("alice-home"))
    await sim_service.document(Owner.account(ACCOUNT), numbers=CODES)
    alice, bob, _ = await alice_at_her_desk_calls_bob(sim_service, api)
    await alice.press("*5", FAST)
    call = the_call(sim_service)
    await wait_until(lambda: rings(call))
    running = takeover_of(call)
    assert running is not None
    assert len(running.ringing) == 2
    home = next(r.channel_id for r in running.ringing if "alice-home" in r.target.dial_string)
    # The other device's hang-up is slow: the cell has answered, the takeover still runs.
    driver.sim.core.stalls["DELETE", f"/ari/channels/{home}"] = 1.5
    await cell.answer()
    await wait_until(
        lambda: any(m == "DELETE" and p.endswith(home) for m, p, _ in driver.sim.core.requests)
    )
    await cell.press("*9", FAST)  # the takeover took these digits; it must hand them back
    assert takeover_of(call) is running
    await cell.wait_hears("playback", "sound:beep", timeout=5)
    await bob.wait_hears("party", "alice-cell")
    await wait_until(lambda: sim_service.metrics.codes.get(("play", "ok"), 0) == 1)
