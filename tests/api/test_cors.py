"""CORS as crossbar (issue 17 item 5): preflights without a token, headers on every answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ari_metaflows.api.context import ApiContext
from ari_metaflows.api.server import create_app
from ari_metaflows.config import ConfigError, load_settings

from ..conftest import ADMIN_TOKEN

Client = TestClient[Any, Any]
UI = "http://ui.example.com:3000"
PREFLIGHT = {
    "Origin": UI,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "x-auth-token, content-type, if-match",
}


def assert_cors(headers: Any, origin: str = "*") -> None:
    assert headers["Access-Control-Allow-Origin"] == origin
    methods = {m.strip() for m in headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PUT", "DELETE", "OPTIONS"} <= methods
    allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    assert {"x-auth-token", "content-type", "if-match"} <= allowed


@pytest.mark.parametrize(
    "path",
    [
        "/v2/accounts/acc1/metaflows",
        "/v2/accounts/acc1/users/u1/metaflows",
        "/v2/api_auth",
        "/v2/accounts/acc1/api_key",
        "/v2/accounts/acc1/channels/c1",
        "/v2/nowhere",
    ],
)
async def test_a_browser_preflight_needs_no_token(client: Client, path: str) -> None:
    response = await client.options(path, headers=PREFLIGHT)
    assert response.status in (200, 204)
    assert_cors(response.headers)


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/v2/accounts/acc1/metaflows", {"X-Auth-Token": ADMIN_TOKEN}, 200),
        ("GET", "/v2/accounts/acc1/metaflows", {}, 401),
        ("GET", "/v2/nowhere", {"X-Auth-Token": ADMIN_TOKEN}, 404),
        ("PATCH", "/v2/accounts/acc1/metaflows", {"X-Auth-Token": ADMIN_TOKEN}, 405),
        ("POST", "/v2/accounts/acc1/metaflows", {"X-Auth-Token": ADMIN_TOKEN}, 400),
        ("GET", "/healthz", {}, 200),
    ],
)
async def test_every_answer_carries_the_cors_headers(
    client: Client, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    response = await client.request(method, path, headers={"Origin": UI, **headers})
    assert response.status == status
    assert_cors(response.headers)


async def test_a_cross_origin_browser_flow(client: Client) -> None:
    """What a browser UI on another origin does: preflight, then the real request."""
    path = "/v2/accounts/acc1/metaflows"
    preflight = await client.options(path, headers=PREFLIGHT)
    assert preflight.status in (200, 204)
    response = await client.post(
        path,
        json={"data": {"numbers": {"5": {"module": "play", "data": {"id": "beep"}}}}},
        headers={"Origin": UI, "X-Auth-Token": ADMIN_TOKEN},
    )
    assert response.status == 200
    assert_cors(response.headers)
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"ETag", "X-Request-ID"} <= exposed


@pytest.fixture
async def ui_client(api_context: ApiContext) -> AsyncIterator[Client]:
    context = replace(api_context, cors_origin=UI)
    async with TestClient(TestServer(create_app(context), host="127.0.0.1")) as client:
        yield client


async def test_the_allowed_origin_is_configurable(ui_client: Client) -> None:
    response = await ui_client.options("/v2/accounts/acc1/metaflows", headers=PREFLIGHT)
    assert_cors(response.headers, UI)
    response = await ui_client.get("/v2/accounts/acc1/metaflows")
    assert response.status == 401
    assert_cors(response.headers, UI)


def test_cors_origin_setting() -> None:
    assert load_settings({}).cors_origin == "*"
    assert load_settings({"METAFLOWS_CORS_ORIGIN": UI}).cors_origin == UI
    for bad in ("ui.example.com", "http://x/\r\nSet-Cookie: a=b", "javascript:1"):
        with pytest.raises(ConfigError, match="METAFLOWS_CORS_ORIGIN"):
            load_settings({"METAFLOWS_CORS_ORIGIN": bad})
