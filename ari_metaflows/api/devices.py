"""``/v2/accounts/{A}/devices[/{D}]`` and ``/v2/accounts/{A}/users/{U}/devices``: the directory."""

from __future__ import annotations

from aiohttp import web

from ..devices import DeviceStore, validate_device
from ..devices.store import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from ..errors import NotFound, NotReady
from .context import CONTEXT
from .envelope import paging, respond
from .requests import data_object, if_match, page_size, path_id, principal_for, query_id


def _store(request: web.Request) -> DeviceStore:
    store = request.app[CONTEXT].devices
    if store is None:
        raise NotReady("the device directory is not configured")
    return store


async def _account(request: web.Request) -> str:
    account_id = path_id(request, "account_id")
    await principal_for(request, account_id)
    return account_id


async def _listing(request: web.Request, account_id: str, owner_id: str | None) -> web.Response:
    """Oldest first, in Kazoo's pages: ``page_size`` (default 50), ``start_key`` from the
    previous answer's ``next_start_key``; ``paginate=false`` answers every device at once."""
    store = _store(request)
    if request.query.get("paginate") == "false":
        devices = await store.list(account_id, owner_id)
        return respond(request, [device.summary() for device in devices])
    start_key = request.query.get("start_key")
    page = await store.page(
        account_id,
        owner_id,
        page_size=page_size(request, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
        start_key=start_key,
    )
    return respond(
        request,
        [device.summary() for device in page.devices],
        paging=paging(len(page.devices), start_key, page.next_start_key),
    )


async def list_devices(request: web.Request) -> web.Response:
    account_id = await _account(request)
    return await _listing(request, account_id, query_id(request, "filter_owner_id"))


async def list_user_devices(request: web.Request) -> web.Response:
    account_id = await _account(request)
    return await _listing(request, account_id, path_id(request, "user_id"))


async def create_device(request: web.Request) -> web.Response:
    account_id = await _account(request)
    document = validate_device(await data_object(request))
    stored = await _store(request).create(account_id, document)
    return respond(request, stored.as_data(), status=201, revision=stored.revision)


async def get_device(request: web.Request) -> web.Response:
    account_id = await _account(request)
    device_id = path_id(request, "device_id")
    stored = await _store(request).get(account_id, device_id)
    if stored is None:
        raise NotFound(f"no device {device_id} in account {account_id}")
    return respond(request, stored.as_data(), revision=stored.revision)


async def post_device(request: web.Request) -> web.Response:
    account_id = await _account(request)
    device_id = path_id(request, "device_id")
    expected = if_match(request)
    document = validate_device(await data_object(request))
    stored = await _store(request).replace(account_id, device_id, document, if_match=expected)
    return respond(request, stored.as_data(), revision=stored.revision)


async def delete_device(request: web.Request) -> web.Response:
    account_id = await _account(request)
    device_id = path_id(request, "device_id")
    stored = await _store(request).delete(account_id, device_id, if_match=if_match(request))
    return respond(request, stored.as_data())


def add_routes(router: web.UrlDispatcher) -> None:
    collection = router.add_resource("/v2/accounts/{account_id}/devices")
    collection.add_route("GET", list_devices)
    collection.add_route("PUT", create_device)
    item = router.add_resource("/v2/accounts/{account_id}/devices/{device_id}")
    item.add_route("GET", get_device)
    item.add_route("POST", post_device)
    item.add_route("DELETE", delete_device)
    router.add_resource("/v2/accounts/{account_id}/users/{user_id}/devices").add_route(
        "GET", list_user_devices
    )
