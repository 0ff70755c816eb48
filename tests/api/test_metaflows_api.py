"""The metaflows REST API over real HTTP on loopback, with a real PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ari_metaflows.api.context import ApiContext
from ari_metaflows.auth.tokens import TokenStore
from ari_metaflows.db.database import Database
from ari_metaflows.metaflows.store import MetaflowStore

from ..conftest import ADMIN_TOKEN
from ..metaflows.test_documents import SEED_ANSWER

Client = TestClient[Any, Any]

SEED_BODY = (
    r'{"data":{"binding_digit":"*", "patterns":{"2(\\d+)":{"module":"transfer",'
    r' "data":{"takeback_dtmf":"*1"}}}}}'
)
ADMIN = {"X-Auth-Token": ADMIN_TOKEN}
ENVELOPE_KEYS = {"auth_token", "data", "node", "request_id", "status", "timestamp", "version"}

OWNER_PATHS = [
    "/v2/accounts/acc1/metaflows",
    "/v2/accounts/acc1/users/alice/metaflows",
    "/v2/accounts/acc1/devices/desk-1/metaflows",
]


async def call(
    client: Client,
    method: str,
    path: str,
    *,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], Any]:
    response = await client.request(
        method, path, data=body, headers=ADMIN if headers is None else headers
    )
    payload = await response.json()
    return response.status, payload, response.headers


def assert_error(payload: dict[str, Any], status: int, message: str) -> None:
    assert set(payload) == ENVELOPE_KEYS | {"error", "message"}
    assert payload["status"] == "error"
    assert payload["error"] == str(status)
    assert payload["message"] == message


@pytest.mark.parametrize("path", OWNER_PATHS)
async def test_seed_examples_on_every_owner_level(client: Client, path: str) -> None:
    status, payload, _ = await call(client, "GET", path)
    assert status == 200
    assert set(payload) == ENVELOPE_KEYS  # no revision while nothing is stored
    assert payload["data"] == {}
    assert payload["status"] == "success"
    assert payload["auth_token"] == ADMIN_TOKEN

    status, payload, headers = await call(client, "POST", path, body=SEED_BODY)
    assert status == 200
    assert set(payload) == ENVELOPE_KEYS | {"revision"}
    assert payload["data"] == SEED_ANSWER
    revision = payload["revision"]
    assert headers["ETag"] == f'"{revision}"'

    status, payload, _ = await call(client, "GET", path)
    assert payload["data"] == SEED_ANSWER
    assert payload["revision"] == revision

    status, payload, _ = await call(client, "DELETE", path)
    assert status == 200
    assert payload["data"] == {}
    assert payload["revision"] != revision

    status, payload, _ = await call(client, "GET", path)
    assert payload["data"] == {}
    assert "revision" not in payload


async def test_levels_are_stored_separately_and_get_is_not_merged(client: Client) -> None:
    await call(client, "POST", OWNER_PATHS[0], body=SEED_BODY)
    _, payload, _ = await call(client, "GET", OWNER_PATHS[1])
    assert payload["data"] == {}


async def test_pattern_order_comes_back_as_written(client: Client) -> None:
    keys = ["9(\\d)", "^1", "0+", "5$", "3.*"]
    body = json.dumps({"data": {"patterns": {k: {"module": "hangup"} for k in keys}}})
    _, payload, _ = await call(client, "POST", OWNER_PATHS[0], body=body)
    assert list(payload["data"]["patterns"]) == keys
    response = await client.get(OWNER_PATHS[0], headers=ADMIN)
    raw = await response.text()
    assert list(json.loads(raw)["data"]["patterns"]) == keys
    positions = [raw.index(json.dumps(k)) for k in keys]
    assert positions == sorted(positions)


async def test_request_id_is_echoed(client: Client) -> None:
    _, payload, headers = await call(
        client, "GET", OWNER_PATHS[0], headers={**ADMIN, "X-Request-ID": "abc-123"}
    )
    assert payload["request_id"] == "abc-123"
    assert headers["X-Request-ID"] == "abc-123"


# -- bad input: nothing stored changes -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "invalid request"),
        (b"{not json", "invalid request"),
        (b"\xff\xfe", "invalid request"),
        (b"[]", "invalid request"),
        (b'{"binding_digit": "*"}', "invalid request"),
        (b'{"data": []}', "invalid request"),
        (b'{"data": "x"}', "invalid request"),
        (b'{"data": {"binding_digit": 5}}', "validation error"),
        (b'{"data": {"numbers": {"1": {"module": "nope"}}}}', "validation error"),
        (b'{"data": {"patterns": {"(": {"module": "hangup"}}}}', "validation error"),
        (b'{"data": {"numbers": {"1": {"module": "relate"}}}}', "validation error"),
    ],
)
async def test_bad_bodies_get_400_and_change_nothing(
    client: Client, body: bytes, message: str
) -> None:
    path = OWNER_PATHS[1]
    _, stored, _ = await call(client, "POST", path, body=SEED_BODY)
    status, payload, _ = await call(client, "POST", path, body=body)
    assert status == 400
    assert_error(payload, 400, message)
    _, after, _ = await call(client, "GET", path)
    assert after["data"] == SEED_ANSWER
    assert after["revision"] == stored["revision"]


async def test_validation_error_data_is_keyed_by_path(client: Client) -> None:
    body = b'{"data": {"binding_digit": "X", "numbers": {"1": {"module": "nope"}}}}'
    _, payload, _ = await call(client, "POST", OWNER_PATHS[0], body=body)
    assert payload["data"]["binding_digit"]["enum"]["value"] == "X"
    assert payload["data"]["numbers.1.module"]["error"]["message"] == (
        "unable to find metaflow schema for module nope"
    )


async def test_oversized_body_gets_413(client: Client) -> None:
    body = b'{"data": {"x_pad": "' + b"a" * (300 * 1024) + b'"}}'
    status, payload, _ = await call(client, "POST", OWNER_PATHS[0], body=body)
    assert status == 413
    assert_error(payload, 413, "request_entity_too_large")
    _, after, _ = await call(client, "GET", OWNER_PATHS[0])
    assert after["data"] == {}


@pytest.mark.parametrize(
    "path",
    [
        "/v2/accounts/bad%20id/metaflows",
        "/v2/accounts/" + "a" * 129 + "/metaflows",
        "/v2/accounts/acc1/users/al%2Fice/metaflows",
        "/v2/accounts/acc1/devices/d%3Bx/metaflows",
    ],
)
async def test_bad_ids_get_400(client: Client, path: str) -> None:
    status, payload, _ = await call(client, "GET", path)
    assert status == 400
    assert_error(payload, 400, "invalid identifier")


async def test_unknown_path_gets_404(client: Client) -> None:
    status, payload, _ = await call(client, "GET", "/v2/accounts/acc1/nothing")
    assert status == 404
    assert_error(payload, 404, "not_found")


async def test_wrong_method_gets_405_with_allow(client: Client) -> None:
    status, payload, headers = await call(client, "PUT", OWNER_PATHS[0], body=SEED_BODY)
    assert status == 405
    assert_error(payload, 405, "invalid_method")
    assert headers["Allow"] == "DELETE, GET, POST"


# -- auth ---------------------------------------------------------------------------------------


async def test_missing_token_gets_401(client: Client) -> None:
    status, payload, _ = await call(client, "GET", OWNER_PATHS[0], headers={})
    assert status == 401
    assert_error(payload, 401, "invalid_credentials")


@pytest.mark.parametrize("token", ["wrong", "mft_unknown-token", "x" * 2000])
async def test_bad_token_gets_401_and_writes_nothing(client: Client, token: str) -> None:
    status, payload, _ = await call(
        client, "POST", OWNER_PATHS[0], body=SEED_BODY, headers={"X-Auth-Token": token}
    )
    assert status == 401
    assert_error(payload, 401, "invalid_credentials")
    _, after, _ = await call(client, "GET", OWNER_PATHS[0])
    assert after["data"] == {}


async def test_account_token_works_only_on_its_account(client: Client, tokens: TokenStore) -> None:
    _, secret = await tokens.create("acc1", "ops")
    mine = {"X-Auth-Token": secret}
    status, payload, _ = await call(client, "POST", OWNER_PATHS[1], body=SEED_BODY, headers=mine)
    assert status == 200
    assert payload["auth_token"] == secret
    for path in ("/v2/accounts/acc2/metaflows", "/v2/accounts/acc2/users/alice/metaflows"):
        status, payload, _ = await call(client, "GET", path, headers=mine)
        assert status == 403
        assert_error(payload, 403, "forbidden")
        status, payload, _ = await call(client, "POST", path, body=SEED_BODY, headers=mine)
        assert status == 403
    _, after, _ = await call(client, "GET", "/v2/accounts/acc2/users/alice/metaflows")
    assert after["data"] == {}


async def test_revoked_token_is_refused(client: Client, tokens: TokenStore) -> None:
    info, secret = await tokens.create("acc1")
    assert (await call(client, "GET", OWNER_PATHS[0], headers={"X-Auth-Token": secret}))[0] == 200
    assert await tokens.revoke(info.id)
    assert (await call(client, "GET", OWNER_PATHS[0], headers={"X-Auth-Token": secret}))[0] == 401


# -- revisions ----------------------------------------------------------------------------------


async def test_if_match_makes_writes_conditional(client: Client) -> None:
    path = OWNER_PATHS[0]
    _, first, _ = await call(client, "POST", path, body=SEED_BODY)
    headers = {**ADMIN, "If-Match": f'"{first["revision"]}"'}
    status, second, _ = await call(client, "POST", path, body=SEED_BODY, headers=headers)
    assert status == 200
    status, payload, _ = await call(client, "POST", path, body=SEED_BODY, headers=headers)
    assert status == 409
    assert_error(payload, 409, "datastore_conflict")
    status, payload, _ = await call(client, "DELETE", path, headers=headers)
    assert status == 409
    _, after, _ = await call(client, "GET", path)
    assert after["revision"] == second["revision"]
    status, _, _ = await call(
        client, "DELETE", path, headers={**ADMIN, "If-Match": second["revision"]}
    )
    assert status == 200


# -- dependencies -------------------------------------------------------------------------------


async def test_database_down_gets_503(client: Client, db: Database) -> None:
    await db.close()
    status, payload, _ = await call(client, "POST", OWNER_PATHS[0], body=SEED_BODY)
    assert status == 503
    assert_error(payload, 503, "datastore_unreachable")
    status, payload, _ = await call(client, "GET", "/readyz", headers={})
    assert status == 503
    assert payload["data"]["checks"] == {"database": "unavailable"}


async def test_health_ready_and_openapi(client: Client) -> None:
    status, payload, _ = await call(client, "GET", "/healthz", headers={})
    assert status == 200
    assert payload["data"] == {"status": "alive"}
    status, payload, _ = await call(client, "GET", "/readyz", headers={})
    assert status == 200
    assert payload["data"]["checks"] == {"database": "ok"}
    response = await client.get("/openapi.json")
    document = await response.json()
    assert document["openapi"].startswith("3.")
    assert "/v2/accounts/{account_id}/users/{user_id}/metaflows" in document["paths"]
    assert "ModuleData.transfer" in document["components"]["schemas"]


async def test_unexpected_failure_is_an_envelope_without_a_trace(
    client: Client, api_context: ApiContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: MetaflowStore, owner: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(MetaflowStore, "get", broken)
    status, payload, _ = await call(client, "GET", OWNER_PATHS[0])
    assert status == 500
    assert_error(payload, 500, "internal_error")
    assert "secret internals" not in json.dumps(payload)
