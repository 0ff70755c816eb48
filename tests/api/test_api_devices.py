"""The device directory API over real HTTP on loopback, with a real PostgreSQL; and the typed
directory the call engine reads."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ari_metaflows.api.context import ApiContext
from ari_metaflows.api.server import create_app
from ari_metaflows.auth.tokens import TokenStore
from ari_metaflows.db.database import Database
from ari_metaflows.devices import Device, DeviceDirectory, DeviceStore, DeviceUnreachable

from ..helpers.engine_service import ADMIN_TOKEN

Client = TestClient[Any, Any]
ADMIN = {"X-Auth-Token": ADMIN_TOKEN}
BASE = "/v2/accounts/acc1/devices"


@pytest.fixture
async def devices(db: Database) -> DeviceStore:
    return DeviceStore(db)


@pytest.fixture
async def dclient(api_context: ApiContext, devices: DeviceStore) -> AsyncIterator[Client]:
    api_context.devices = devices
    async with TestClient(TestServer(create_app(api_context), host="127.0.0.1")) as client:
        yield client


async def call(
    client: Client,
    method: str,
    path: str,
    data: Any = None,
    *,
    raw: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    body = raw if raw is not None else (None if data is None else json.dumps({"data": data}))
    response = await client.request(
        method, path, data=body, headers=ADMIN if headers is None else headers
    )
    return response.status, await response.json()


async def create(client: Client, data: dict[str, Any], account: str = "acc1") -> dict[str, Any]:
    status, payload = await call(client, "PUT", f"/v2/accounts/{account}/devices", data)
    assert status == 201, payload
    return payload


DESK = {"name": "Alice desk", "owner_id": "alice", "sip": {"username": "alice-desk"}}
MOBILE = {"name": "Alice mobile", "owner_id": "alice", "call_forward": {"number": "+15551234"}}


async def test_create_read_replace_delete(dclient: Client) -> None:
    created = await create(dclient, DESK)
    device_id = created["data"]["id"]
    assert created["status"] == "success"
    assert created["data"] == {**DESK, "enabled": True, "id": device_id}
    assert created["revision"].startswith("1-")

    status, payload = await call(dclient, "GET", f"{BASE}/{device_id}")
    assert status == 200
    assert payload["data"] == created["data"]
    assert payload["revision"] == created["revision"]

    changed = {**DESK, "name": "Alice's desk phone", "enabled": False, "mac_address": "x"}
    status, payload = await call(dclient, "POST", f"{BASE}/{device_id}", changed)
    assert status == 200
    assert payload["data"] == {**changed, "id": device_id}  # unknown fields kept, as Kazoo
    assert payload["revision"].startswith("2-")

    status, payload = await call(dclient, "DELETE", f"{BASE}/{device_id}")
    assert status == 200
    assert payload["data"]["id"] == device_id
    for method in ("GET", "DELETE"):
        status, payload = await call(dclient, method, f"{BASE}/{device_id}")
        assert status == 404
        assert payload["message"] == "not_found"
    status, payload = await call(dclient, "POST", f"{BASE}/{device_id}", DESK)
    assert status == 404


async def test_listing_and_owner_filters(dclient: Client) -> None:
    desk = (await create(dclient, DESK))["data"]
    mobile = (await create(dclient, MOBILE))["data"]
    bob = (await create(dclient, {"name": "Bob", "owner_id": "bob", "dial_string": "SIP/b"}))[
        "data"
    ]
    unowned = (await create(dclient, {"name": "Lobby"}))["data"]
    await create(dclient, {"name": "Elsewhere", "owner_id": "alice"}, account="acc2")

    status, payload = await call(dclient, "GET", BASE)
    assert status == 200
    assert [row["id"] for row in payload["data"]] == [
        desk["id"],
        mobile["id"],
        bob["id"],
        unowned["id"],
    ]
    assert payload["data"][0] == {
        "id": desk["id"],
        "name": "Alice desk",
        "owner_id": "alice",
        "enabled": True,
        "username": "alice-desk",
    }
    for path in (f"{BASE}?filter_owner_id=alice", "/v2/accounts/acc1/users/alice/devices"):
        status, payload = await call(dclient, "GET", path)
        assert status == 200
        assert [row["id"] for row in payload["data"]] == [desk["id"], mobile["id"]]
    status, payload = await call(dclient, "GET", "/v2/accounts/acc1/users/nobody/devices")
    assert payload["data"] == []
    status, payload = await call(dclient, "GET", f"{BASE}?filter_owner_id=a%20b")
    assert status == 400

    # Changing the owner moves the device between users' listings.
    await call(dclient, "POST", f"{BASE}/{mobile['id']}", {**MOBILE, "owner_id": "bob"})
    status, payload = await call(dclient, "GET", "/v2/accounts/acc1/users/bob/devices")
    assert [row["id"] for row in payload["data"]] == [mobile["id"], bob["id"]]


async def test_account_isolation(dclient: Client, tokens: TokenStore) -> None:
    other = (await create(dclient, DESK, account="acc2"))["data"]["id"]
    # Another account's device id is unknown here (404), whatever the method.
    for method in ("GET", "POST", "DELETE"):
        status, payload = await call(dclient, method, f"{BASE}/{other}", DESK)
        assert status == 404, method
    # An account token cannot reach another account at all (403).
    _, secret = await tokens.create("acc1")
    mine = {"X-Auth-Token": secret}
    status, _ = await call(dclient, "PUT", BASE, DESK, headers=mine)
    assert status == 201
    for method, path in (
        ("GET", "/v2/accounts/acc2/devices"),
        ("PUT", "/v2/accounts/acc2/devices"),
        ("GET", f"/v2/accounts/acc2/devices/{other}"),
        ("DELETE", f"/v2/accounts/acc2/devices/{other}"),
        ("GET", "/v2/accounts/acc2/users/alice/devices"),
    ):
        status, payload = await call(dclient, method, path, DESK, headers=mine)
        assert status == 403, (method, path)
        assert payload["message"] == "forbidden"
    status, _ = await call(dclient, "GET", BASE, headers={})
    assert status == 401
    status, payload = await call(dclient, "GET", f"/v2/accounts/acc2/devices/{other}")
    assert status == 200  # untouched by all of the above
    assert payload["data"]["name"] == DESK["name"]


@pytest.mark.parametrize(
    ("data", "field", "keyword"),
    [
        ({}, "name", "required"),
        ({"name": 5}, "name", "type"),
        ({"name": ""}, "name", "minLength"),
        ({"name": "x", "enabled": "yes"}, "enabled", "type"),
        ({"name": "x", "owner_id": "a b"}, "owner_id", "pattern"),
        ({"name": "x", "sip": "alice"}, "sip", "type"),
        ({"name": "x", "sip": {"username": "al/ice"}}, "sip.username", "pattern"),
        ({"name": "x", "call_forward": {"number": "1@evil"}}, "call_forward.number", "pattern"),
        ({"name": "x", "call_forward": {"enabled": 1}}, "call_forward.enabled", "type"),
        ({"name": "x", "dial_string": "alice"}, "dial_string", "pattern"),
        ({"name": "x", "dial_string": "PJSIP/a,b"}, "dial_string", "pattern"),
    ],
)
async def test_validation_errors(
    dclient: Client, data: dict[str, Any], field: str, keyword: str
) -> None:
    status, payload = await call(dclient, "PUT", BASE, data)
    assert status == 400
    assert payload["message"] == "validation error"
    assert keyword in payload["data"][field]
    status, payload = await call(dclient, "GET", BASE)
    assert payload["data"] == []  # nothing stored


@pytest.mark.parametrize(
    "raw", ["", "not json", '{"data": 5}', "[1]", '{"data": {"name": "x"', '{"name": "x"}']
)
async def test_bad_bodies(dclient: Client, raw: str) -> None:
    status, payload = await call(dclient, "PUT", BASE, raw=raw)
    assert status == 400
    assert payload["status"] == "error"
    status, payload = await call(dclient, "GET", BASE)
    assert payload["data"] == []


async def test_sent_id_is_ignored_and_bad_path_id_refused(dclient: Client) -> None:
    created = (await create(dclient, {**DESK, "id": "mine"}))["data"]
    assert created["id"] != "mine"
    assert len(created["id"]) == 32
    status, payload = await call(dclient, "GET", f"{BASE}/bad%20id")
    assert status == 400
    assert payload["message"] == "invalid identifier"
    status, _ = await call(dclient, "PATCH", f"{BASE}/{created['id']}", DESK)
    assert status == 405


async def test_revisions(dclient: Client) -> None:
    created = await create(dclient, DESK)
    path = f"{BASE}/{created['data']['id']}"
    first = created["revision"]
    status, payload = await call(
        dclient, "POST", path, {**DESK, "name": "one"}, headers={**ADMIN, "If-Match": first}
    )
    assert status == 200
    second = payload["revision"]
    assert second != first
    # A writer still holding the first revision loses, and changes nothing.
    for method in ("POST", "DELETE"):
        status, payload = await call(
            dclient, method, path, {**DESK, "name": "two"}, headers={**ADMIN, "If-Match": first}
        )
        assert status == 409, method
        assert payload["message"] == "datastore_conflict"
    status, payload = await call(dclient, "GET", path)
    assert payload["data"]["name"] == "one"
    status, _ = await call(dclient, "DELETE", path, headers={**ADMIN, "If-Match": f'"{second}"'})
    assert status == 200


async def test_database_down_gets_503(dclient: Client, db: Database) -> None:
    device_id = (await create(dclient, DESK))["data"]["id"]
    await db.close()
    for method, path in (
        ("GET", BASE),
        ("PUT", BASE),
        ("GET", f"{BASE}/{device_id}"),
        ("POST", f"{BASE}/{device_id}"),
        ("DELETE", f"{BASE}/{device_id}"),
        ("GET", "/v2/accounts/acc1/users/alice/devices"),
    ):
        status, payload = await call(dclient, method, path, DESK)
        assert status == 503, (method, path)
        assert payload["message"] == "datastore_unreachable"


async def test_directory_for_the_call_engine(dclient: Client, devices: DeviceStore) -> None:
    desk = (await create(dclient, DESK))["data"]["id"]
    mobile = (await create(dclient, MOBILE))["data"]["id"]
    off = (await create(dclient, {**DESK, "name": "old", "enabled": False}))["data"]["id"]
    await create(dclient, {**DESK, "name": "other account"}, account="acc2")
    directory = DeviceDirectory(devices)

    device = await directory.get("acc1", desk)
    assert device is not None
    assert device.owner_id == "alice"
    assert device.enabled
    assert device.dial_string("transfer") == "PJSIP/alice-desk"
    assert await directory.get("acc2", desk) is None
    assert await directory.get("acc1", "nope") is None

    owned = await directory.of_owner("acc1", "alice")
    assert [d.id for d in owned] == [desk, mobile, off]
    assert [d.enabled for d in owned] == [True, True, False]
    assert owned[1].dial_string("from-metaflows") == "Local/+15551234@from-metaflows"
    assert await directory.of_owner("acc1", "bob") == []


def test_dial_string_precedence() -> None:
    def device(doc: dict[str, Any]) -> Device:
        return Device.from_document("acc1", "d1", {"name": "d", **doc})

    sip = {"username": "alice"}
    assert device({"sip": sip}).dial_string("t") == "PJSIP/alice"
    forward_off = {"number": "555", "enabled": False}
    assert device({"sip": sip, "call_forward": forward_off}).dial_string("t") == "PJSIP/alice"
    forward_on = {"number": "555", "enabled": True}
    assert device({"sip": sip, "call_forward": forward_on}).dial_string("t") == "Local/555@t"
    assert device({"call_forward": {"number": "555"}}).dial_string("ctx") == "Local/555@ctx"
    both = {"sip": sip, "dial_string": "IAX2/peer"}
    assert device(both).dial_string("t") == "IAX2/peer"
    nowhere = device({})
    assert not nowhere.reachable
    with pytest.raises(DeviceUnreachable):
        nowhere.dial_string("t")
