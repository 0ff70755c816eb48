"""intercept (issue 16, SPEC §6): a device from the directory rings as a leg of the call and,
when it answers, takes the intercepted leg's place; that leg is hung up.

Scenarios on the scenario driver (the simulator, or a real Asterisk with ARI_URL), devices
created through the device API and reached through the transfer context.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ari_metaflows.calls.leg import Role
from ari_metaflows.features.takeover import schemas, takeover_of
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.testing.scenario import Owner as PhoneOwner

from ..helpers.devices import (
    Client,
    audited,
    caller_leg,
    create_device,
    phone_device,
    post_action,
    rings,
    takeover_view,
)
from ..helpers.engine_service import (
    ACCOUNT,
    FAST,
    Service,
    connected_call,
    requests_to,
    the_call,
    wait_until,
)


async def _ringing_call(service: Service) -> tuple[Any, Any, dict[str, Any]]:
    """alice calls bob; bob's phone rings. Answers the phones and alice's leg (as listed)."""
    driver = service.driver
    alice = driver.add_phone("alice", PhoneOwner(account=ACCOUNT, user="u-alice"))
    bob = driver.add_phone("bob")
    await driver.call(alice, bob)
    await alice.wait_hears("ringing")
    return alice, bob, await _caller(service)


async def _caller(service: Service) -> dict[str, Any]:
    call = await wait_until(lambda: next(iter(service.engine.calls.values()), None))
    assert call is not None
    await wait_until(lambda: Role.CALLEE in call.legs and call.legs[Role.CALLER].identity)
    return {"id": call.legs[Role.CALLER].channel_id, "call": call}


async def test_a_ringing_call_is_picked_up_by_a_device_of_another_user(
    service: Service, api: Client
) -> None:
    carol = service.driver.add_phone("carol")
    carol_desk = await create_device(api, phone_device("carol", "u-carol"))
    alice, bob, _ = await _ringing_call(service)
    leg = await caller_leg(api)
    assert leg["phase"] == "dialing"
    callee = leg["peer"]  # the ringing callee: the leg to intercept
    status, payload = await post_action(
        api, callee, {"action": "intercept", "target_type": "device", "target_id": carol_desk}
    )
    assert status == 202, payload
    view = await wait_until(
        lambda: takeover_view(api, leg["id"]), lambda v: v and v["state"] == "ringing"
    )
    assert view == {
        "action": "intercept",
        "state": "ringing",
        "leg": "callee",
        "targets": [carol_desk],
    }
    await carol.answer()
    await alice.wait_hears("party", "carol")
    await carol.wait_hears("party", "alice")
    await bob.wait_idle()  # the intercepted leg is hung up
    call = the_call(service)
    await wait_until(lambda: call.phase == "connected")
    assert [leg.role for leg in call.legs.values()] == ["caller", "callee"]
    assert call.legs[Role.CALLEE].channel_id != callee
    assert takeover_of(call) is None
    assert await takeover_view(api, leg["id"]) is None
    (event,) = await audited(service, 1)  # under the caller's account: bob had no owner yet
    assert (event.trigger, event.module, event.outcome) == ("api", "intercept", "ok")
    assert (event.leg, event.channel_id) == ("callee", callee)
    await alice.hangup()
    await carol.wait_idle()
    await service.wait_no_calls()


async def test_by_user_rings_every_enabled_device_but_one_and_the_first_answer_wins(
    service: Service, api: Client
) -> None:
    carol = service.driver.add_phone("carol")
    carol2 = service.driver.add_phone("carol2")
    service.driver.add_phone("carol3")
    first = await create_device(api, phone_device("carol", "u-carol"))
    second = await create_device(api, phone_device("carol2", "u-carol"))
    await create_device(api, phone_device("carol3", "u-carol", enabled=False))
    alice, bob, _ = await _ringing_call(service)
    leg = await caller_leg(api)
    status, payload = await post_action(
        api, leg["peer"], {"action": "intercept", "target_type": "user", "target_id": "u-carol"}
    )
    assert status == 202, payload
    view = await wait_until(
        lambda: takeover_view(api, leg["id"]), lambda v: v and v["state"] == "ringing"
    )
    assert sorted(view["targets"]) == sorted([first, second])  # not the disabled one
    await carol2.answer()
    await alice.wait_hears("party", "carol2")
    await carol.wait_idle()  # the other ringing device stops
    await bob.wait_idle()
    await alice.hangup()
    await service.wait_no_calls()


async def test_an_answered_call_is_taken_over_without_unbridged_only(
    service: Service, api: Client
) -> None:
    carol = service.driver.add_phone("carol")
    carol_desk = await create_device(api, phone_device("carol", "u-carol"))
    await service.document(
        Owner.account(ACCOUNT),
        numbers={
            "6": {
                "module": "intercept",
                "data": {
                    "target_type": "device",
                    "target_id": carol_desk,
                    "unbridged_only": False,
                },
            }
        },
    )
    alice, bob = await connected_call(service)
    await alice.press("*6", FAST)  # alice's leg goes to carol
    await carol.answer()
    await bob.wait_hears("party", "carol")
    await alice.wait_idle()
    (event,) = await audited(service, 1)
    assert (event.module, event.outcome) == ("intercept", "ok")
    await bob.hangup()
    await service.wait_no_calls()


async def test_an_answered_call_is_not_intercepted_with_unbridged_only(
    service: Service, api: Client, caplog: pytest.LogCaptureFixture
) -> None:
    carol = service.driver.add_phone("carol")
    carol_desk = await create_device(api, phone_device("carol", "u-carol"))
    await service.document(
        Owner.account(ACCOUNT),
        numbers={
            "6": {
                "module": "intercept",
                "data": {"target_type": "device", "target_id": carol_desk},
            }
        },
    )
    alice, _bob = await connected_call(service)
    with caplog.at_level(logging.WARNING):
        await alice.press("*6", FAST)
        (event,) = await audited(service, 1)
    assert (event.module, event.outcome) == ("intercept", "failed")
    assert "only a leg still ringing can be intercepted" in caplog.text
    assert not await carol.in_call()
    await alice.wait_hears("party", "bob")
    leg = await caller_leg(api)
    status, payload = await post_action(
        api, leg["peer"], {"action": "intercept", "target_type": "device", "target_id": carol_desk}
    )
    assert status == 409, payload
    assert "only a leg still ringing" in payload["data"]["message"]


@pytest.mark.parametrize(
    ("target", "status", "why"),
    [
        ({"target_type": "device", "target_id": "no-such-device"}, 404, "no device"),
        ({"target_type": "device", "target_id": "@other"}, 404, "no device"),
        ({"target_type": "device", "target_id": "@disabled"}, 400, "is disabled"),
        ({"target_type": "device", "target_id": "@unreachable"}, 400, "no sip.username"),
        ({"target_type": "user", "target_id": "u-nobody"}, 404, "has no devices"),
        ({"target_type": "user", "target_id": "u-dora"}, 400, "no other enabled device"),
        ({"target_type": "number", "target_id": "1@evil"}, 400, "not a dialable number"),
        ({"target_id": "x"}, 400, "needs data.target_type"),
    ],
)
async def test_bad_targets_are_refused_up_front_and_nothing_rings(
    service: Service, api: Client, target: dict[str, str], status: int, why: str
) -> None:
    devices = {
        "@other": await create_device(api, phone_device("carol", "u-carol"), account="acc2"),
        "@disabled": await create_device(api, phone_device("carol", "u-carol", enabled=False)),
        "@unreachable": await create_device(api, {"name": "no way", "owner_id": "u-carol"}),
    }
    await create_device(api, phone_device("dora", "u-dora", enabled=False))
    carol = service.driver.add_phone("carol")
    target = {k: devices.get(v, v) for k, v in target.items()}
    alice, bob, _ = await _ringing_call(service)
    leg = await caller_leg(api)
    answer, payload = await post_action(api, leg["peer"], {"action": "intercept", **target})
    assert answer == status, payload
    assert why in payload["data"]["message"]
    assert takeover_of(the_call(service)) is None
    assert not await carol.in_call()
    await bob.answer()  # the call goes on as dialled
    await alice.wait_hears("party", "bob")


async def test_unknown_channel_is_404(service: Service, api: Client) -> None:
    status, payload = await post_action(
        api, "no-such-channel", {"action": "intercept", "target_type": "device", "target_id": "x"}
    )
    assert status == 404, payload


async def test_nobody_answering_changes_nothing(
    service: Service, api: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schemas, "RING_SECONDS", 0.5)
    carol = service.driver.add_phone("carol")
    carol_desk = await create_device(api, phone_device("carol", "u-carol"))
    alice, bob, caller = await _ringing_call(service)
    leg = await caller_leg(api)
    status, _ = await post_action(
        api, leg["peer"], {"action": "intercept", "target_type": "device", "target_id": carol_desk}
    )
    assert status == 202
    call = caller["call"]
    await wait_until(lambda: takeover_of(call) is not None)
    await wait_until(lambda: takeover_of(call) is None, timeout=5)
    assert [leg.role for leg in call.legs.values()] == ["caller", "callee"]
    assert call.legs[Role.CALLEE].channel_id == leg["peer"]
    assert not await carol.in_call()
    await bob.answer()  # bob still rings: the call goes on as dialled
    await alice.wait_hears("party", "bob")


async def test_the_callee_answering_first_stops_the_pickup(service: Service, api: Client) -> None:
    carol = service.driver.add_phone("carol")
    carol_desk = await create_device(api, phone_device("carol", "u-carol"))
    alice, bob, caller = await _ringing_call(service)
    leg = await caller_leg(api)
    status, _ = await post_action(
        api, leg["peer"], {"action": "intercept", "target_type": "device", "target_id": carol_desk}
    )
    assert status == 202
    call = caller["call"]
    await wait_until(lambda: rings(call))
    await bob.answer()
    await alice.wait_hears("party", "bob")
    await wait_until(lambda: takeover_of(call) is None)
    await carol.wait_idle()
    assert [leg.role for leg in call.legs.values()] == ["caller", "callee"]


async def test_the_call_ending_while_the_target_rings_leaves_nothing(
    service: Service, api: Client
) -> None:
    carol = service.driver.add_phone("carol")
    carol_desk = await create_device(api, phone_device("carol", "u-carol"))
    alice, bob, caller = await _ringing_call(service)
    leg = await caller_leg(api)
    status, _ = await post_action(
        api, leg["peer"], {"action": "intercept", "target_type": "device", "target_id": carol_desk}
    )
    assert status == 202
    call = caller["call"]
    await wait_until(lambda: rings(call))
    ringing = [leg.channel_id for leg in call.legs.values() if not leg.party]
    assert len(ringing) == 1
    await alice.hangup()
    await service.wait_no_calls()
    await carol.wait_idle()
    await bob.wait_idle()
    for channel_id in ringing:
        assert service.engine._by_channel.get(channel_id) is None


async def test_asterisk_refusing_the_dial_is_a_failed_intercept(
    sim_service: Service, api: Client, caplog: pytest.LogCaptureFixture
) -> None:
    service = sim_service
    nowhere = await create_device(
        api, {"name": "gone", "owner_id": "u-carol", "dial_string": "PJSIP/nobody-here"}
    )
    await service.document(
        Owner.account(ACCOUNT),
        numbers={
            "6": {
                "module": "intercept",
                "data": {"target_type": "device", "target_id": nowhere, "unbridged_only": False},
            }
        },
    )
    alice, bob = await connected_call(service)
    with caplog.at_level(logging.WARNING):
        await alice.press("*6", FAST)
        (event,) = await audited(service, 1)
    assert (event.module, event.outcome) == ("intercept", "failed")
    assert "Asterisk refused to ring" in caplog.text
    call = the_call(service)
    assert takeover_of(call) is None
    assert [leg.role for leg in call.legs.values()] == ["caller", "callee"]
    await bob.wait_hears("party", "alice")


async def test_a_sip_device_is_dialled_on_its_endpoint_with_auto_answer(
    sim_service: Service, api: Client
) -> None:
    service = sim_service
    carol = service.driver.add_phone("carol")
    carol_desk = await create_device(
        api, {"name": "Carol desk", "owner_id": "u-carol", "sip": {"username": "carol"}}
    )
    alice, bob, _ = await _ringing_call(service)
    leg = await caller_leg(api)
    status, payload = await post_action(
        api,
        leg["peer"],
        {
            "action": "intercept",
            "target_type": "device",
            "target_id": carol_desk,
            "auto_answer": True,
        },
    )
    assert status == 202, payload
    await carol.answer()
    await alice.wait_hears("party", "carol")
    await bob.wait_idle()
    created = [q for q in requests_to(service, "/channels/create") if "takeover" in q["appArgs"]]
    assert [q["endpoint"] for q in created] == ["PJSIP/carol"]
    headers = [q for q in requests_to(service, "/variable") if "PJSIP_HEADER" in q["variable"]]
    assert headers == [{"variable": "PJSIP_HEADER(add,Call-Info)", "value": "answer-after=0"}]
