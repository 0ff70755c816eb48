"""Kazoo login (issue 17 item 3): api_key, PUT /v2/api_auth, idle expiry, token locations,
rotation by API and CLI, crossbar error bodies (item 4)."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ari_metaflows.auth.tokens import SESSION_IDLE_SECONDS, TokenStore, digest
from ari_metaflows.db.database import Database

from ..conftest import ADMIN_TOKEN
from ..service.test_cli import cli_env, run_cli

Client = TestClient[Any, Any]
ADMIN = {"X-Auth-Token": ADMIN_TOKEN}
HEX64 = re.compile(r"^[0-9a-f]{64}$")
PLAY = {"module": "play", "data": {"id": "beep"}}


async def login(client: Client, api_key: str) -> tuple[int, dict[str, Any]]:
    response = await client.put("/v2/api_auth", json={"data": {"api_key": api_key}})
    return response.status, await response.json()


async def api_key_of(client: Client, account: str, headers: dict[str, str] = ADMIN) -> str:
    response = await client.get(f"/v2/accounts/{account}/api_key", headers=headers)
    assert response.status == 200, await response.text()
    key: str = (await response.json())["data"]["api_key"]
    return key


async def test_kazoo_client_logs_in_and_manages_every_owner_level(client: Client) -> None:
    """A client that knows only crossbar: api_key → PUT /v2/api_auth → metaflows with the token."""
    key = await api_key_of(client, "acc1")
    assert HEX64.match(key)
    assert await api_key_of(client, "acc1") == key  # made once, then stable

    status, payload = await login(client, key)
    assert status == 201
    assert payload["status"] == "success"
    token = payload["auth_token"]
    assert token
    assert token != key
    assert payload["data"]["account_id"] == "acc1"

    mine = {"X-Auth-Token": token}
    for path in (
        "/v2/accounts/acc1/metaflows",
        "/v2/accounts/acc1/users/alice/metaflows",
        "/v2/accounts/acc1/devices/desk/metaflows",
    ):
        document = {"binding_digit": "*", "numbers": {"5": PLAY}, "patterns": {r"^2(\d+)$": PLAY}}
        response = await client.post(path, json={"data": document}, headers=mine)
        assert response.status == 200, await response.text()
        answer = await response.json()
        assert answer["auth_token"] == token
        got = await (await client.get(path, headers=mine)).json()
        assert got["data"]["numbers"]["5"]["data"]["id"] == "beep"
        assert (await client.delete(path, headers=mine)).status == 200
        assert (await (await client.get(path, headers=mine)).json())["data"] == {}

    # the same token can read its own key but nothing of another account
    assert await api_key_of(client, "acc1", mine) == key
    other = await client.get("/v2/accounts/acc2/metaflows", headers=mine)
    assert other.status == 403
    body = await other.json()
    assert body["message"] == "forbidden"
    assert body["data"]["message"]
    assert (await client.get("/v2/accounts/acc2/api_key", headers=mine)).status == 403


@pytest.mark.parametrize("api_key", ["0" * 64, "not-a-key", "A" * 64, "", "x" * 5000])
async def test_a_wrong_api_key_is_401_invalid_credentials(client: Client, api_key: str) -> None:
    await api_key_of(client, "acc1")
    status, payload = await login(client, api_key)
    if api_key == "" or len(api_key) > 128:
        assert status == 400
        assert payload["message"] == "validation error"
        return
    assert status == 401
    assert payload["message"] == "invalid_credentials"
    assert payload["error"] == "401"
    assert payload["data"] == {"message": "invalid credentials"}


@pytest.mark.parametrize(
    "body", [b"", b"{}", b'{"data": {}}', b'{"data": {"api_key": 5}}', b'{"data": "x"}']
)
async def test_api_auth_without_a_key_is_a_400(client: Client, body: bytes) -> None:
    response = await client.put("/v2/api_auth", data=body)
    assert response.status == 400
    assert (await response.json())["message"] in ("invalid request", "validation error")


async def test_a_token_is_accepted_in_header_bearer_or_query(client: Client) -> None:
    _, payload = await login(client, await api_key_of(client, "acc1"))
    token = payload["auth_token"]
    path = "/v2/accounts/acc1/metaflows"
    for kwargs in (
        {"headers": {"X-Auth-Token": token}},
        {"headers": {"Authorization": f"Bearer {token}"}},
        {"params": {"auth_token": token}},
    ):
        response = await client.get(path, **kwargs)
        assert response.status == 200, kwargs
        assert (await response.json())["auth_token"] == token
    assert (await client.get(path, headers={"Authorization": "Basic abc"})).status == 401
    assert (await client.get(path, params={"auth_token": "mft_nope"})).status == 401


async def test_session_tokens_expire_after_an_idle_hour_and_use_refreshes_them(
    client: Client, db: Database
) -> None:
    _, payload = await login(client, await api_key_of(client, "acc1"))
    token = payload["auth_token"]
    mine = {"X-Auth-Token": token}
    path = "/v2/accounts/acc1/metaflows"

    async def idle_for(seconds: int) -> None:
        async with db.connection() as conn:
            await conn.execute(
                "UPDATE api_tokens SET last_used_at = now() - make_interval(secs => $2) "
                "WHERE token_sha256 = $1",
                digest(token),
                float(seconds),
            )

    await idle_for(SESSION_IDLE_SECONDS - 120)
    assert (await client.get(path, headers=mine)).status == 200  # used: refreshed
    async with db.connection() as conn:
        idle = await conn.fetchval(
            "SELECT extract(epoch FROM now() - last_used_at) FROM api_tokens "
            "WHERE token_sha256 = $1",
            digest(token),
        )
    assert idle < 60
    await idle_for(SESSION_IDLE_SECONDS + 1)
    expired = await client.get(path, headers=mine)
    assert expired.status == 401
    assert (await expired.json())["message"] == "invalid_credentials"


async def test_tokens_and_keys_are_stored_hashed_where_they_are_secrets(
    client: Client, db: Database
) -> None:
    _, payload = await login(client, await api_key_of(client, "acc1"))
    token = payload["auth_token"]
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT * FROM api_tokens")
    assert rows
    assert all(token not in str(dict(row)) for row in rows)
    assert any(row["token_sha256"] == digest(token) for row in rows)


async def test_rotation_by_api_retires_the_old_key_and_its_sessions(client: Client) -> None:
    old = await api_key_of(client, "acc1")
    _, payload = await login(client, old)
    old_session = {"X-Auth-Token": payload["auth_token"]}
    rotated = await client.put("/v2/accounts/acc1/api_key", headers=ADMIN)
    assert rotated.status == 200
    new = (await rotated.json())["data"]["api_key"]
    assert HEX64.match(new)
    assert new != old
    assert await api_key_of(client, "acc1") == new
    assert (await login(client, old))[0] == 401
    assert (await client.get("/v2/accounts/acc1/metaflows", headers=old_session)).status == 401
    status, payload = await login(client, new)
    assert status == 201
    # an account token may rotate its own key, not another's
    mine = {"X-Auth-Token": payload["auth_token"]}
    assert (await client.put("/v2/accounts/acc2/api_key", headers=mine)).status == 403
    assert (await client.put("/v2/accounts/acc1/api_key", headers={})).status == 401


async def test_cli_shows_and_rotates_the_api_key(
    database_url: str, client: Client, tokens: TokenStore
) -> None:
    env = cli_env(METAFLOWS_DATABASE_URL=database_url)
    code, out, _ = await run_cli("api-key", "show", "--account", "acc7", env=env)
    assert code == 0
    shown = out.strip()
    assert HEX64.match(shown)
    assert await tokens.api_key("acc7") == shown
    code, out, _ = await run_cli("api-key", "rotate", "--account", "acc7", env=env)
    assert code == 0
    rotated = out.strip()
    assert HEX64.match(rotated)
    assert rotated != shown
    assert (await login(client, shown))[0] == 401
    assert (await login(client, rotated))[0] == 201
    code, _, _ = await run_cli("api-key", "rotate", "--account", "bad/id", env=env)
    assert code == 2


async def test_no_token_or_key_reaches_the_logs(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = await api_key_of(client, "acc1")
    _, payload = await login(client, key)
    token = payload["auth_token"]
    await client.get("/v2/accounts/acc1/metaflows", params={"auth_token": token})
    await client.get("/v2/accounts/acc1/metaflows", params={"auth_token": "mft_wrong"})
    await client.get("/v2/accounts/acc1/metaflows", headers={"Authorization": f"Bearer {token}"})
    # ours only: the test server's own aiohttp access log is off in the service (app.py)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("ari_metaflows"))
    assert "/v2/accounts/acc1/metaflows?auth_token=***" in text
    for secret in (token, key, "mft_wrong", ADMIN_TOKEN):
        assert secret not in text


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "error_id"),
    [
        ("GET", "/v2/accounts/acc1/metaflows", {}, 401, "invalid_credentials"),
        ("GET", "/v2/nowhere", ADMIN, 404, "not_found"),
        ("PATCH", "/v2/accounts/acc1/metaflows", ADMIN, 405, "invalid_method"),
        ("GET", "/v2/api_auth", {}, 405, "invalid_method"),
    ],
)
async def test_error_bodies_carry_crossbar_ids(
    client: Client, method: str, path: str, headers: dict[str, str], status: int, error_id: str
) -> None:
    response = await client.request(method, path, headers=headers)
    assert response.status == status
    body = await response.json()
    assert body["message"] == error_id
    assert body["error"] == str(status)
    assert isinstance(body["data"]["message"], str)
    assert body["data"]["message"]


async def test_revision_conflict_is_datastore_conflict(client: Client) -> None:
    path = "/v2/accounts/acc1/metaflows"
    await client.post(path, json={"data": {}}, headers=ADMIN)
    response = await client.post(path, json={"data": {}}, headers={**ADMIN, "If-Match": "999-nope"})
    assert response.status == 409
    body = await response.json()
    assert body["message"] == "datastore_conflict"
    assert body["data"]["message"]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    candidate=st.one_of(
        st.text(max_size=140),
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        st.integers(),
        st.none(),
    )
)
async def test_api_auth_lets_in_only_the_real_key(client: Client, candidate: Any) -> None:
    real = await api_key_of(client, "acc1")
    response = await client.put("/v2/api_auth", json={"data": {"api_key": candidate}})
    body = await response.json()
    if candidate == real:
        assert response.status == 201
    else:
        assert response.status in (400, 401), body
        assert body["message"] in ("validation error", "invalid_credentials", "invalid request")
        assert body["auth_token"] == ""


async def test_concurrent_first_reads_agree_on_one_key(client: Client) -> None:
    keys = await asyncio.gather(*(api_key_of(client, "fresh") for _ in range(5)))
    assert len(set(keys)) == 1
