"""Devices for the intercept and move scenarios, created through the device API.

A test phone is reached through the transfer context (``call_forward.number`` = its name): the
simulator routes that to the phone, and so does ``asterisk-conf/extensions.conf``'s
``metaflows-test-transfer`` on a real Asterisk.
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from ari_metaflows.audit import EventStore
from ari_metaflows.audit.store import EventFilter
from ari_metaflows.calls.feature import CallHandle
from ari_metaflows.features.takeover import takeover_of
from ari_metaflows.testing.eventually import eventually
from ari_metaflows.testing.scenario import Owner as PhoneOwner

from .engine_service import ACCOUNT, ADMIN, Service, the_call

Client = TestClient[Any, Any]


def phone_device(phone: str, owner: str | None, **fields: Any) -> dict[str, Any]:
    device: dict[str, Any] = {"name": f"{phone}'s phone", "call_forward": {"number": phone}}
    if owner is not None:
        device["owner_id"] = owner
    return {**device, **fields}


async def create_device(api: Client, device: dict[str, Any], account: str = ACCOUNT) -> str:
    response = await api.put(
        f"/v2/accounts/{account}/devices", json={"data": device}, headers=ADMIN
    )
    payload = await response.json()
    assert response.status == 201, payload
    device_id: str = payload["data"]["id"]
    return device_id


async def channels(api: Client) -> list[dict[str, Any]]:
    response = await api.get(f"/v2/accounts/{ACCOUNT}/channels", headers=ADMIN)
    assert response.status == 200, await response.text()
    found: list[dict[str, Any]] = (await response.json())["data"]
    return found


async def channel(api: Client, channel_id: str) -> dict[str, Any]:
    response = await api.get(f"/v2/accounts/{ACCOUNT}/channels/{channel_id}", headers=ADMIN)
    assert response.status == 200, await response.text()
    found: dict[str, Any] = (await response.json())["data"]
    return found


async def caller_leg(api: Client) -> dict[str, Any]:
    """The caller's leg of the one call (the channel listing shows it while the callee rings)."""
    legs = await eventually(
        lambda: channels(api),
        lambda legs: any(leg["role"] == "caller" for leg in legs),
        what="the caller's leg in the listing",
    )
    (leg,) = [leg for leg in legs if leg["role"] == "caller"]
    return leg


async def post_action(
    api: Client, channel_id: str, data: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    response = await api.post(
        f"/v2/accounts/{ACCOUNT}/channels/{channel_id}", json={"data": data}, headers=ADMIN
    )
    payload: dict[str, Any] = await response.json()
    return response.status, payload


async def takeover_view(api: Client, channel_id: str) -> Any:
    return (await channel(api, channel_id))["takeover"]


async def audited(service: Service, count: int) -> list[Any]:
    """The audit rows of the account once ``count`` of them are stored."""
    store = EventStore(service.app.db)

    async def rows() -> list[Any]:
        return (await store.page(ACCOUNT, EventFilter())).events

    found: list[Any] = await eventually(rows, lambda events: len(events) >= count)
    return found


def rings(call: CallHandle) -> bool:
    """An intercept or move of the call has its devices ringing."""
    running = takeover_of(call)
    return running is not None and running.state == "ringing"


async def alice_at_her_desk_calls_bob(service: Service, api: Client) -> tuple[Any, Any, str]:
    """alice (user u-alice, at her desk device) talks to bob: her phone, bob's, and the id of
    her desk device."""
    desk = await create_device(api, phone_device("alice", "u-alice"))
    driver = service.driver
    alice = driver.add_phone("alice", PhoneOwner(account=ACCOUNT, user="u-alice", device=desk))
    bob = driver.add_phone("bob")
    await driver.call(alice, bob)
    await bob.answer()
    await alice.wait_hears("party", "bob")
    await eventually(lambda: the_call(service).phase == "connected", what="a connected call")
    return alice, bob, desk
