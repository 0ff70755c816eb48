"""Leg identity: from channel variables, the endpoint, the default account (SPEC §3)."""

from __future__ import annotations

import pytest

from ari_metaflows.calls.identity import endpoint_name, identity_of
from ari_metaflows.metaflows.resolver import LegIdentity


async def no_variables(name: str) -> str | None:
    raise AssertionError("channelvars were in the snapshot: no request needed")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("PJSIP/alice-0000001a", "alice"),
        ("PJSIP/sip-trunk.1-000000ff", "sip-trunk.1"),
        ("Local/1234@default-00000002;1", "1234"),
        ("Snoop/1234-00000000", None),
        ("garbage", None),
    ],
)
def test_endpoint_name(name: str, expected: str | None) -> None:
    assert endpoint_name(name) == expected


async def test_identity_from_channelvars_with_endpoint_as_device() -> None:
    snapshot = {
        "name": "PJSIP/alice-0000001a",
        "channelvars": {
            "METAFLOWS_ACCOUNT_ID": "acc1",
            "METAFLOWS_USER_ID": "u1",
            "METAFLOWS_DEVICE_ID": "",
        },
    }
    assert await identity_of(snapshot, None, no_variables) == LegIdentity("acc1", "u1", "alice")


async def test_identity_default_account_and_none_without_one() -> None:
    snapshot = {"name": "PJSIP/bob-00000001", "channelvars": {"METAFLOWS_ACCOUNT_ID": ""}}
    assert await identity_of(snapshot, "dflt", no_variables) == LegIdentity("dflt", None, "bob")
    assert await identity_of(snapshot, None, no_variables) is None


async def test_identity_rejects_junk_ids_and_falls_back_to_variables() -> None:
    asked: list[str] = []

    async def read(name: str) -> str | None:
        asked.append(name)
        return {"METAFLOWS_ACCOUNT_ID": "acc9", "METAFLOWS_DEVICE_ID": "bad id!"}.get(name)

    identity = await identity_of({"name": "PJSIP/carol-00000003"}, None, read)
    assert identity == LegIdentity("acc9", None, "carol")
    assert asked == ["METAFLOWS_ACCOUNT_ID", "METAFLOWS_USER_ID", "METAFLOWS_DEVICE_ID"]
