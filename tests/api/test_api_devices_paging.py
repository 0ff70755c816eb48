"""Device listings in Kazoo's pages: ``page_size``, ``start_key`` → ``next_start_key``
(oldest first, nothing skipped or repeated), ``paginate=false`` for everything at once."""

from __future__ import annotations

from typing import Any

from ari_metaflows.devices import DeviceStore

from .test_api_devices import BASE, Client, call, create, dclient, devices

__all__ = ["dclient", "devices"]  # the fixtures this module uses from test_api_devices


async def _pages(client: Client, path: str, size: int) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    query = f"?page_size={size}"
    while True:
        status, payload = await call(client, "GET", path + query)
        assert status == 200, payload
        pages.append(payload)
        following = payload.get("next_start_key")
        if following is None:
            return pages
        assert len(pages) < 20, "paging does not end"
        query = f"?page_size={size}&start_key={following}"


async def test_pages_cover_every_device_once_in_creation_order(
    dclient: Client, devices: DeviceStore
) -> None:
    made = [
        (await create(dclient, {"name": f"phone {n}", "owner_id": "alice" if n % 2 else "bob"}))[
            "data"
        ]["id"]
        for n in range(7)
    ]
    await create(dclient, {"name": "elsewhere", "owner_id": "alice"}, account="acc2")

    pages = await _pages(dclient, BASE, 3)
    assert [p["page_size"] for p in pages] == [3, 3, 1]
    assert [d["id"] for p in pages for d in p["data"]] == made
    assert "start_key" not in pages[0]
    assert pages[1]["start_key"] == pages[0]["next_start_key"]

    alices = [made[n] for n in range(7) if n % 2]
    for path in (f"{BASE}?filter_owner_id=alice", "/v2/accounts/acc1/users/alice/devices"):
        joiner = "&" if "?" in path else "?"
        status, first = await call(dclient, "GET", f"{path}{joiner}page_size=2")
        assert status == 200
        assert [d["id"] for d in first["data"]] == alices[:2]
        key = first["next_start_key"]
        status, rest = await call(dclient, "GET", f"{path}{joiner}page_size=2&start_key={key}")
        assert [d["id"] for d in rest["data"]] == alices[2:]
        assert "next_start_key" not in rest

    status, everything = await call(dclient, "GET", f"{BASE}?paginate=false")
    assert [d["id"] for d in everything["data"]] == made
    assert "next_start_key" not in everything
    status, default = await call(dclient, "GET", BASE)  # one page of 50 holds them all
    assert [d["id"] for d in default["data"]] == made
    assert default["page_size"] == 7


async def test_bad_paging_is_refused(dclient: Client) -> None:
    await create(dclient, {"name": "one"})
    bad = ("page_size=0", "page_size=501", "page_size=x", "page_size=%C2%B3", "start_key=x")
    for query in bad:
        status, payload = await call(dclient, "GET", f"{BASE}?{query}")
        assert status == 400, (query, payload)
    status, payload = await call(dclient, "GET", f"{BASE}?start_key=bm90LWEtZGF0ZXxpZA")
    assert status == 400, payload
