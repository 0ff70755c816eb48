"""Hostile bodies (issue 17 item 2): invalid Unicode, numbers outside the schema, absurd
nesting → 400, nothing stored, never a 500, and every answer is valid JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ari_metaflows.api.bodies import MAX_JSON_DEPTH, parse_json
from ari_metaflows.errors import InvalidRequest

from ..conftest import ADMIN_TOKEN
from ..helpers.loop_watchdog import MAX_STALL_MS, watch_loop

Client = TestClient[Any, Any]
ADMIN = {"X-Auth-Token": ADMIN_TOKEN, "Content-Type": "application/json"}
PATHS = [
    "/v2/accounts/acc1/metaflows",
    "/v2/accounts/acc1/users/u1/metaflows",
    "/v2/accounts/acc1/devices/d1/metaflows",
]
SEED = {"numbers": {"5": {"module": "play", "data": {"id": "beep"}}}}

BAD_BODIES = [
    pytest.param(b'{"data": {"foo": "\\ud800"}}', id="lone-surrogate-value"),
    pytest.param(b'{"data": {"\\udfff": 1}}', id="lone-surrogate-key"),
    pytest.param(
        b'{"data": {"patterns": {"\\ud800": {"module": "play"}}}}', id="lone-surrogate-pattern"
    ),
    pytest.param(b'{"data": {"foo": "\xed\xa0\x80"}}', id="utf8-encoded-surrogate"),
    pytest.param(b'{"data": {"foo": "\xff\xfe"}}', id="invalid-utf8"),
    pytest.param(b'{"data": {"digit_timeout": ' + b"9" * 5000 + b"}}", id="5000-digit-int"),
    pytest.param(b'{"data": {"x": ' + b"1" * 25 + b"}}", id="int-over-64-bits"),
    pytest.param(b'{"data": {"digit_timeout": NaN}}', id="nan"),
    pytest.param(b'{"data": {"digit_timeout": Infinity}}', id="infinity"),
    pytest.param(b'{"data": {"digit_timeout": -Infinity}}', id="minus-infinity"),
    pytest.param(b'{"data": {"digit_timeout": 1e400}}', id="1e400"),
    pytest.param(b'{"data": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}", id="deep-100000"),
    pytest.param(b'{"data": {"x": ' + b"[" * 500 + b"]" * 500 + b"}}", id="deep-500"),
    pytest.param(
        b'{"data": {"x": '
        + b'{"a":' * (MAX_JSON_DEPTH + 1)
        + b"1"
        + b"}" * (MAX_JSON_DEPTH + 1)
        + b"}}",
        id="deep-objects",
    ),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("body", BAD_BODIES)
async def test_bad_body_is_a_400_and_stores_nothing(client: Client, path: str, body: bytes) -> None:
    seeded = await client.post(path, json={"data": SEED}, headers=ADMIN)
    before = (await seeded.json())["data"]
    async with watch_loop() as watch:
        response = await client.post(path, data=body, headers=ADMIN)
        text = await response.text()
    assert response.status == 400, text
    payload = json.loads(text)  # valid JSON
    assert payload["message"] in ("invalid request", "validation error")
    assert payload["status"] == "error"
    assert watch.max_busy_ms < MAX_STALL_MS, watch
    after = await client.get(path, headers=ADMIN)
    assert after.status == 200
    assert (await after.json())["data"] == before


@pytest.mark.parametrize("revision", ["\u00c2\u0092", "\u00a9\u00ef", "a b", "x" * 201])
async def test_an_if_match_that_is_no_revision_is_a_400_and_changes_nothing(
    client: Client, revision: str
) -> None:
    """Found by schemathesis: non-ASCII bytes in If-Match reached the database (a 500)."""
    path = "/v2/accounts/acc1/metaflows"
    before = (await (await client.post(path, json={"data": SEED}, headers=ADMIN)).json())["data"]
    for method in ("POST", "DELETE"):
        response = await client.request(
            method, path, json={"data": {}}, headers={**ADMIN, "If-Match": revision}
        )
        assert response.status == 400, await response.text()
    after = await client.get(path, headers=ADMIN)
    assert (await after.json())["data"] == before


async def test_channels_and_parking_bodies_are_checked_the_same_way(client: Client) -> None:
    for method, path in [
        ("POST", "/v2/accounts/acc1/channels/c1"),
        ("PUT", "/v2/accounts/acc1/channels/c1"),
        ("POST", "/v2/accounts/acc1/parked_calls/701"),
    ]:
        response = await client.request(
            method, path, data=b'{"data": {"action": "\\ud800"}}', headers=ADMIN
        )
        assert response.status == 400, (path, await response.text())
        json.loads(await response.text())


def test_parse_json_accepts_ordinary_bodies() -> None:
    body = {"data": {"digit_timeout": 800, "x": -1.5, "t": "é ☎", "deep": [[[1]]]}}
    assert parse_json(json.dumps(body).encode()) == body
    assert parse_json(json.dumps(body, ensure_ascii=False).encode()) == body
    assert parse_json(b"9223372036854775807") == 2**63 - 1
    with pytest.raises(InvalidRequest):
        parse_json(b"9223372036854775808")


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=300))
def test_parse_json_never_fails_other_than_invalid_request(raw: bytes) -> None:
    try:
        value = parse_json(raw)
    except InvalidRequest:
        return
    json.dumps(value, allow_nan=False).encode("utf-8")  # what passed can be answered


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(), max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(alphabet=st.characters(), max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=4))
async def test_any_json_ish_document_gets_an_answer_that_is_json(
    client: Client, data: dict[str, Any]
) -> None:
    body = json.dumps({"data": data}, ensure_ascii=True).encode()
    response = await client.post(PATHS[0], data=body, headers=ADMIN)
    text = await response.text()
    assert response.status in (200, 400), text
    json.loads(text, parse_constant=_no_constants)


def _no_constants(name: str) -> Any:
    raise AssertionError(f"the answer holds {name}, which is not JSON")


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": {"x": "a\\u0000b"}}',
        b'{"data": {"a\\u0000": 1}}',
        b'{"data": {"x": 1e308, "y": -0.0, "z": 5e-324}}',
        b'{"data": {"x": "\\ud83d\\ude00"}}',  # a proper surrogate pair is fine
    ],
)
async def test_odd_but_valid_bodies_never_get_a_500(client: Client, body: bytes) -> None:
    response = await client.post(PATHS[0], data=body, headers=ADMIN)
    text = await response.text()
    assert response.status in (200, 400), text
    json.loads(text, parse_constant=_no_constants)
    again = await client.get(PATHS[0], headers=ADMIN)
    assert again.status == 200


def _numbers(count: int) -> dict[str, Any]:
    return {"numbers": {str(i): {"module": "play", "data": {"id": "b"}} for i in range(count)}}


@pytest.mark.parametrize(
    ("name", "data", "status"),
    [
        ("500 nodes", _numbers(500), 200),
        ("501 nodes", _numbers(501), 400),
        ("nodes up to the body limit", _numbers(6000), 400),
        (
            "wide children",
            {"numbers": {"1": {"module": "play", "children": _numbers(600)["numbers"]}}},
            400,
        ),
        ("a list of 100,000 integers", {"x": [1] * 100_000}, 400),
        ("a list of 30,000 floats", {"x": [1.5] * 30_000}, 400),
        ("15,000 short keys", {"x": {f"k{i}": i for i in range(15_000)}}, 400),
        ("a list of 9,000 integers", {"x": [12345] * 9_000}, 200),
        ("3,000 short keys", {"x": {f"k{i}": i for i in range(3_000)}}, 200),
    ],
)
async def test_big_documents_never_stall_the_loop(
    client: Client, name: str, data: dict[str, Any], status: int
) -> None:
    path = PATHS[0]
    seeded = await client.post(path, json={"data": SEED}, headers=ADMIN)
    before = (await seeded.json())["data"]
    body = json.dumps({"data": data}, separators=(",", ":")).encode()
    assert len(body) < 256 * 1024, name
    async with watch_loop() as watch:
        response = await client.post(path, data=body, headers=ADMIN)
        text = await response.text()
        after = await (await client.get(path, headers=ADMIN)).json()
    assert response.status == status, text[:300]
    assert watch.max_busy_ms < MAX_STALL_MS, (name, watch)
    if status == 400:
        assert json.loads(text)["message"] in ("validation error", "invalid request")
        assert after["data"] == before
    else:
        assert after["data"]["x" if "x" in data else "numbers"]
