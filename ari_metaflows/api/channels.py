"""``/v2/accounts/{A}/channels``: live legs of the account, and metaflows run on them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..cluster.directory import CallDirectory
from ..errors import AsteriskUnavailable, InvalidRequest
from ..metaflows.documents import Node, validate_module_data, validate_node
from .context import CONTEXT
from .envelope import respond
from .requests import data_object, json_body, path_id, principal_for


def _calls(request: web.Request) -> Any:
    """The call directory (``cluster.directory``): this instance's engines, and in a cluster
    the live legs of the others."""
    context = request.app[CONTEXT]
    if context.calls is not None:
        return context.calls
    if context.engine is None:
        raise AsteriskUnavailable("the call engine is not running")
    return CallDirectory({context.engine.asterisk: context.engine})


async def list_channels(request: web.Request) -> web.Response:
    account_id = path_id(request, "account_id")
    await principal_for(request, account_id)
    return respond(request, await _calls(request).legs_of_account(account_id))


async def get_channel(request: web.Request) -> web.Response:
    account_id = path_id(request, "account_id")
    channel_id = path_id(request, "channel_id")
    await principal_for(request, account_id)
    return respond(request, await _calls(request).leg(account_id, channel_id))


async def post_channel(request: web.Request) -> web.Response:
    """Kazoo: ``{"data": {"action": "<module>", …module data…}}`` runs one module."""
    account_id = path_id(request, "account_id")
    channel_id = path_id(request, "channel_id")
    await principal_for(request, account_id)
    data = dict(await data_object(request))
    action = data.pop("action", None)
    if not isinstance(action, str) or not action:
        raise InvalidRequest('data.action must name a module, e.g. {"data": {"action": "hangup"}}')
    module_data = validate_module_data(action, data)
    call_id = await _calls(request).run_node(account_id, channel_id, Node(action, module_data))
    return respond(request, {"call_id": call_id, "action": action}, status=202)


async def put_channel(request: web.Request) -> web.Response:
    """Kazoo: ``{"action": "metaflow", "data": {"module": …, "data": …, "children": …}}``."""
    account_id = path_id(request, "account_id")
    channel_id = path_id(request, "channel_id")
    await principal_for(request, account_id)
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise InvalidRequest('the body must be {"action": "metaflow", "data": {...}}')
    data = dict(body["data"])
    action = body.get("action", data.pop("action", None))
    if action != "metaflow":
        raise InvalidRequest('action must be "metaflow"')
    node = validate_node(data, ("data",))
    call_id = await _calls(request).run_node(account_id, channel_id, Node.from_json(node))
    return respond(request, {"call_id": call_id, "action": "metaflow"}, status=202)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/accounts/{account_id}/channels", list_channels)
    resource = router.add_resource("/v2/accounts/{account_id}/channels/{channel_id}")
    resource.add_route("GET", get_channel)
    resource.add_route("POST", post_channel)
    resource.add_route("PUT", put_channel)
