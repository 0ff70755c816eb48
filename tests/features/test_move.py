"""move (issue 16, SPEC §6): the owner's other devices ring as legs of the call; the first to
answer takes the presser's place in the bridge, the old leg is released, and the other party
stays connected throughout.

Scenarios on the scenario driver (the simulator, or a real Asterisk with ARI_URL), devices
created through the device API and reached through the transfer context.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ari_metaflows.calls.leg import Role
from ari_metaflows.features.takeover import schemas, takeover_of
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.testing.scenario import TestPhone

from ..helpers.devices import (
    Client,
    alice_at_her_desk_calls_bob,
    audited,
    caller_leg,
    create_device,
    phone_device,
    post_action,
    rings,
    takeover_view,
)
from ..helpers.engine_service import ACCOUNT, FAST, Service, the_call, wait_until

MOVE_CODE = {"5": {"module": "move", "data": {}}}


@contextlib.asynccontextmanager
async def _listening(phone: TestPhone) -> AsyncIterator[list[str]]:
    """What ``phone`` hears, sampled every 10 ms while the block runs."""
    heard: list[str] = []

    async def listen() -> None:
        while True:
            hearing = await phone.hears()
            if hearing is not None and (not heard or heard[-1] != str(hearing)):
                heard.append(str(hearing))
            await asyncio.sleep(0.01)

    task = asyncio.create_task(listen())
    try:
        yield heard
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_an_answered_call_moves_to_the_owners_other_device(
    service: Service, api: Client
) -> None:
    cell = service.driver.add_phone("alice-cell")
    cell_id = await create_device(api, phone_device("alice-cell", "u-alice"))
    await service.document(Owner.account(ACCOUNT), numbers=MOVE_CODE)
    alice, bob, _desk = await alice_at_her_desk_calls_bob(service, api)
    leg = await caller_leg(api)
    async with _listening(bob) as bob_heard:
        await alice.press("*5", FAST)
        view = await wait_until(
            lambda: takeover_view(api, leg["id"]), lambda v: v and v["state"] == "ringing"
        )
        assert view == {"action": "move", "state": "ringing", "leg": "caller", "targets": [cell_id]}
        await alice.wait_hears("party", "bob")  # still talking while the cell rings
        await cell.answer()
        await cell.wait_hears("party", "bob")
        await bob.wait_hears("party", "alice-cell")
        await alice.wait_idle()  # the old leg is released
    # bob heard alice, maybe both for an instant, then the cell: never silence or a hang-up
    assert bob_heard[0] == "party:alice"
    assert "party:alice-cell" in bob_heard or await bob.hears() == ("party", "alice-cell")
    assert all(h.startswith("party:") for h in bob_heard), bob_heard
    assert await bob.hears() in (None, ("party", "alice-cell"))
    call = the_call(service)
    assert [leg.role for leg in call.legs.values()] == ["caller", "callee"]
    assert call.legs[Role.CALLER].channel_id != leg["id"]
    assert takeover_of(call) is None
    (event,) = await audited(service, 1)
    assert (event.module, event.outcome) == ("move", "ok")
    await cell.hangup()  # the moved call ends as any call does
    await bob.wait_idle()
    await service.wait_no_calls()


async def test_move_to_one_device_rings_only_that_one(service: Service, api: Client) -> None:
    cell = service.driver.add_phone("alice-cell")
    service.driver.add_phone("alice-home")
    cell_id = await create_device(api, phone_device("alice-cell", "u-alice"))
    await create_device(api, phone_device("alice-home", "u-alice"))
    await service.document(
        Owner.account(ACCOUNT),
        numbers={"5": {"module": "move", "data": {"device_id": cell_id}}},
    )
    alice, bob, _ = await alice_at_her_desk_calls_bob(service, api)
    leg = await caller_leg(api)
    await alice.press("*5", FAST)
    view = await wait_until(
        lambda: takeover_view(api, leg["id"]), lambda v: v and v["state"] == "ringing"
    )
    assert view["targets"] == [cell_id]
    await cell.answer()
    await bob.wait_hears("party", "alice-cell")
    await alice.wait_idle()


async def test_the_channels_api_moves_a_leg(service: Service, api: Client) -> None:
    cell = service.driver.add_phone("alice-cell")
    await create_device(api, phone_device("alice-cell", "u-alice"))
    alice, bob, _ = await alice_at_her_desk_calls_bob(service, api)
    leg = await caller_leg(api)
    status, payload = await post_action(api, leg["id"], {"action": "move"})
    assert status == 202, payload
    await cell.answer()
    await bob.wait_hears("party", "alice-cell")
    await alice.wait_idle()


@pytest.mark.parametrize(
    ("data", "status", "why"),
    [
        ({}, 400, "no other enabled device"),  # alice's only other device is disabled
        ({"owner_id": "u-nobody"}, 404, "has no devices"),
        ({"device_id": "no-such-device"}, 404, "no device"),
        ({"device_id": "@other-account"}, 404, "no device"),
        ({"device_id": "@disabled"}, 400, "is disabled"),
        ({"device_id": "@unreachable"}, 400, "no sip.username"),
        ({"device_id": "@desk", "can_call_self": False}, 400, "presser's own"),
    ],
)
async def test_bad_moves_are_refused_and_the_call_goes_on(
    service: Service,
    api: Client,
    caplog: pytest.LogCaptureFixture,
    data: dict[str, Any],
    status: int,
    why: str,
) -> None:
    devices = {
        "@other-account": await create_device(
            api, phone_device("alice-cell", "u-alice"), account="acc2"
        ),
        "@disabled": await create_device(api, phone_device("alice-cell", "u-alice", enabled=False)),
        "@unreachable": await create_device(api, {"name": "no way", "owner_id": "u-alice"}),
    }
    cell = service.driver.add_phone("alice-cell")
    alice, bob, desk = await alice_at_her_desk_calls_bob(service, api)
    devices["@desk"] = desk
    data = {k: devices.get(v, v) if isinstance(v, str) else v for k, v in data.items()}
    # the API refuses before anything rings
    leg = await caller_leg(api)
    answer, payload = await post_action(api, leg["id"], {"action": "move", **data})
    assert answer == status, payload
    assert why in payload["data"]["message"]
    # the same from a code: a failed flow, with the reason in the log
    await service.document(Owner.account(ACCOUNT), numbers={"5": {"module": "move", "data": data}})
    with caplog.at_level(logging.WARNING):
        await alice.press("*5", FAST)
        (event,) = await audited(service, 1)
    assert (event.module, event.outcome) == ("move", "failed")
    assert why in caplog.text
    assert takeover_of(the_call(service)) is None
    assert not await cell.in_call()
    await bob.wait_hears("party", "alice")


async def test_no_answer_changes_nothing(
    service: Service, api: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schemas, "RING_SECONDS", 0.5)
    cell = service.driver.add_phone("alice-cell")
    await create_device(api, phone_device("alice-cell", "u-alice"))
    await service.document(Owner.account(ACCOUNT), numbers=MOVE_CODE)
    alice, bob, _ = await alice_at_her_desk_calls_bob(service, api)
    call = the_call(service)
    caller_channel = call.legs[Role.CALLER].channel_id
    await alice.press("*5", FAST)
    await wait_until(lambda: takeover_of(call) is not None)
    (event,) = await audited(service, 1)
    assert (event.module, event.outcome) == ("move", "failed")
    assert takeover_of(call) is None
    assert not await cell.in_call()
    assert call.legs[Role.CALLER].channel_id == caller_channel
    assert [leg.role for leg in call.legs.values()] == ["caller", "callee"]
    await bob.wait_hears("party", "alice")
    await alice.wait_hears("party", "bob")


async def test_the_other_party_hanging_up_while_the_device_rings_leaves_nothing(
    service: Service, api: Client
) -> None:
    cell = service.driver.add_phone("alice-cell")
    await create_device(api, phone_device("alice-cell", "u-alice"))
    await service.document(Owner.account(ACCOUNT), numbers=MOVE_CODE)
    alice, bob, _ = await alice_at_her_desk_calls_bob(service, api)
    call = the_call(service)
    await alice.press("*5", FAST)
    await wait_until(lambda: rings(call))
    ringing = [leg.channel_id for leg in call.legs.values() if not leg.party]
    await bob.hangup()
    await service.wait_no_calls()
    await alice.wait_idle()
    await cell.wait_idle()
    assert ringing
    assert all(service.engine._by_channel.get(c) is None for c in ringing)
