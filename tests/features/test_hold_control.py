"""hold_control: SIP-level hold of the presser's leg through ARI, shown in the channels API
(SPEC §6, issue 16 item 5)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ari_metaflows.errors import ValidationFailed
from ari_metaflows.metaflows.documents import validate_document
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.testing.eventually import eventually
from ari_metaflows.testing.scenario import SimDriver

from ..helpers.engine_service import (
    ACCOUNT,
    ADMIN,
    FAST,
    Service,
    connected_call,
    the_call,
)


async def sip_hold(api: TestClient[Any, Any]) -> dict[str, bool]:
    response = await api.get(f"/v2/accounts/{ACCOUNT}/channels", headers=ADMIN)
    assert response.status == 200
    return {leg["role"]: leg["sip_hold"] for leg in (await response.json())["data"]}


async def both_listed(api: TestClient[Any, Any]) -> dict[str, bool]:
    """Both legs in the listing (the callee's owner is looked up just after it answers)."""
    return await eventually(lambda: sip_hold(api), lambda held: len(held) == 2, what="both legs")


async def asterisk_took(service: Service, flows: int) -> None:
    """Asterisk took every hold request so far: ``flows`` hold_control flows ended ok (a
    refused request fails the flow). A real Asterisk's test phone is a Local channel, which
    passes the hold on to its other half as a frame (Asterisk raises ChannelHold only for a
    device that holds), so the request's acceptance is what it shows."""
    await eventually(
        lambda: service.metrics.codes.get(("hold_control", "ok"), 0),
        lambda count: count == flows,
        what=f"{flows} hold_control flows ok",
    )


async def test_hold_unhold_and_toggle_show_in_the_channels_api(
    service: Service, api: TestClient[Any, Any]
) -> None:
    await service.document(
        Owner.account(ACCOUNT),
        numbers={
            "1": {"module": "hold_control", "data": {"action": "hold"}},
            "2": {"module": "hold_control", "data": {"action": "unhold"}},
            "3": {"module": "hold_control"},  # Kazoo's default: toggle
        },
    )
    alice, bob = await connected_call(service)
    await both_listed(api)
    call = the_call(service)
    caller, callee = call.legs["caller"].channel_id, call.legs["callee"].channel_id
    sim = service.driver.sim.core if isinstance(service.driver, SimDriver) else None

    await alice.press("*1", FAST)
    await eventually(lambda: sip_hold(api), lambda held: held["caller"], what="alice held")
    assert (await sip_hold(api))["callee"] is False
    await asterisk_took(service, 1)
    if sim is not None:
        assert sim.channels[caller].held
        await alice.wait_hears("moh", "default")  # chan_pjsip's music on hold to the device
    await bob.wait_hears("party", "alice")  # the other party is not touched

    await alice.press("*3", FAST)  # toggle: off hold again
    await eventually(lambda: sip_hold(api), lambda held: not held["caller"], what="unheld")
    await alice.wait_hears("party", "bob")
    await bob.press("*3", FAST)  # toggle on bob's own leg
    await eventually(lambda: sip_hold(api), lambda held: held["callee"], what="bob held")
    await bob.press("*2", FAST)
    await eventually(lambda: sip_hold(api), lambda held: not held["callee"], what="bob unheld")
    await asterisk_took(service, 4)
    if sim is not None:
        holds = [(m, path) for m, path, _ in sim.requests if path.endswith("/hold")]
        assert holds == [
            ("POST", f"/ari/channels/{caller}/hold"),
            ("DELETE", f"/ari/channels/{caller}/hold"),
            ("POST", f"/ari/channels/{callee}/hold"),
            ("DELETE", f"/ari/channels/{callee}/hold"),
        ]


async def test_unhold_of_a_leg_not_held_is_harmless_and_bad_actions_are_refused(
    service: Service, api: TestClient[Any, Any]
) -> None:
    await service.document(
        Owner.account(ACCOUNT),
        numbers={"2": {"module": "hold_control", "data": {"action": "unhold"}}},
    )
    alice, _bob = await connected_call(service)
    await alice.press("*2", FAST)
    await eventually(
        lambda: service.metrics.codes.get(("hold_control", "ok"), 0),
        lambda count: count == 1,
        what="an unhold flow",
    )
    assert await both_listed(api) == {"caller": False, "callee": False}
    for bad in ("pause", 1, None):
        with pytest.raises(ValidationFailed) as failed:
            validate_document(
                {"numbers": {"1": {"module": "hold_control", "data": {"action": bad}}}}
            )
        assert any(path.endswith("action") for path in failed.value.errors), failed.value.errors
