"""The live channels API: list legs, act on them, and its errors (SPEC §7)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient

from ari_metaflows.auth.tokens import TokenStore
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.testing.eventually import eventually

from ..helpers.engine_service import (
    ACCOUNT,
    ADMIN_TOKEN,
    FAST,
    Service,
    connected_call,
)

ADMIN = {"X-Auth-Token": ADMIN_TOKEN}


# -- with the engine -----------------------------------------------------------------------------


async def test_channels_api_lists_and_acts_on_live_legs(
    sim_service: Service, api: TestClient[Any, Any], tokens: TokenStore
) -> None:
    alice, bob = await connected_call(sim_service)

    async def listed() -> list[dict[str, Any]]:
        response = await api.get(f"/v2/accounts/{ACCOUNT}/channels", headers=ADMIN)
        legs: list[dict[str, Any]] = (await response.json())["data"]
        return legs

    # The call finds the callee's owner just after bridging it: listed a moment later.
    legs = await eventually(
        listed, lambda legs: {leg["role"] for leg in legs} == {"caller", "callee"}
    )
    caller = next(leg for leg in legs if leg["role"] == "caller")
    assert caller["user_id"] == "u-alice"
    assert caller["phase"] == "connected"
    callee_id = next(leg["id"] for leg in legs if leg["role"] == "callee")
    assert caller["peer"] == callee_id

    response = await api.get(f"/v2/accounts/{ACCOUNT}/channels/{caller['id']}", headers=ADMIN)
    assert (await response.json())["data"]["device_id"] == "alice"

    # POST: one module, Kazoo style
    body = {"data": {"action": "play", "id": "beep", "leg": "peer"}}
    response = await api.post(
        f"/v2/accounts/{ACCOUNT}/channels/{caller['id']}", data=json.dumps(body), headers=ADMIN
    )
    assert response.status == 202
    await bob.wait_hears("playback", "sound:beep")
    assert (await alice.hears()) == ("party", "bob")

    # PUT: a whole node with children
    node = {
        "action": "metaflow",
        "data": {"module": "say", "data": {"text": "42"}, "children": {"_": {"module": "hangup"}}},
    }
    response = await api.put(
        f"/v2/accounts/{ACCOUNT}/channels/{callee_id}", data=json.dumps(node), headers=ADMIN
    )
    assert response.status == 202
    await bob.wait_idle(timeout=5)  # said 42 to both, then hung bob (the "presser") up
    await alice.wait_idle()


async def test_channels_api_errors(
    sim_service: Service, api: TestClient[Any, Any], tokens: TokenStore
) -> None:
    await connected_call(sim_service)
    legs = (await (await api.get(f"/v2/accounts/{ACCOUNT}/channels", headers=ADMIN)).json())["data"]
    leg_id = legs[0]["id"]
    url = f"/v2/accounts/{ACCOUNT}/channels/{leg_id}"
    cases: list[tuple[str, str, Any, int]] = [
        ("GET", f"/v2/accounts/{ACCOUNT}/channels/unknown", None, 404),
        ("GET", f"/v2/accounts/other/channels/{leg_id}", None, 404),  # foreign: not found
        ("POST", url, {"data": {}}, 400),
        ("POST", url, {"data": {"action": "relate"}}, 400),
        ("POST", url, {"data": {"action": "play", "id": 5}}, 400),
        ("POST", url, {"nodata": 1}, 400),
        ("PUT", url, {"action": "other", "data": {"module": "hangup"}}, 400),
        ("PUT", url, {"action": "metaflow", "data": {"module": "nope"}}, 400),
    ]
    for method, path, body, status in cases:
        response = await api.request(
            method, path, data=json.dumps(body) if body else None, headers=ADMIN
        )
        assert response.status == status, (method, path, body, await response.text())
    assert (await api.get("/v2/accounts/other/channels", headers=ADMIN)).status == 200
    _, secret = await tokens.create("other")
    response = await api.get(f"/v2/accounts/{ACCOUNT}/channels", headers={"X-Auth-Token": secret})
    assert response.status == 403
    assert sim_service.engine.history == type(sim_service.engine.history)()  # nothing ran


async def test_put_runs_children_in_order(sim_service: Service, api: TestClient[Any, Any]) -> None:
    await sim_service.document(Owner.account(ACCOUNT), numbers={"9": {"module": "hangup"}})
    alice, bob = await connected_call(sim_service)
    legs = (await (await api.get(f"/v2/accounts/{ACCOUNT}/channels", headers=ADMIN)).json())["data"]
    caller = next(leg for leg in legs if leg["role"] == "caller")
    node = {
        "data": {
            "action": "metaflow",
            "module": "play",
            "data": {"id": "beep"},
            "children": {"_": {"module": "play", "data": {"id": "boop"}}},
        }
    }
    response = await api.put(
        f"/v2/accounts/{ACCOUNT}/channels/{caller['id']}", data=json.dumps(node), headers=ADMIN
    )
    assert response.status == 202
    await bob.wait_hears("playback", "sound:beep")
    await bob.wait_hears("playback", "sound:boop", timeout=3)
    await alice.press("*9", FAST)
    await alice.wait_idle()
