"""``/v2/accounts/{A}/channels``: live legs of the account, and metaflows run on them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import AsteriskUnavailable, InvalidRequest
from ..metaflows.documents import Node, validate_module_data, validate_node
from .context import CONTEXT
from .envelope import respond
from .requests import data_object, json_body, path_id, principal_for


def _engine(request: web.Request) -> Any:
    engine = request.app[CONTEXT].engine
    if engine is None:
        raise AsteriskUnavailable("the call engine is not running")
    return engine


async def list_channels(request: web.Request) -> web.Response:
    account_id = path_id(request, "account_id")
    await principal_for(request, account_id)
    return respond(request, _engine(request).legs_of_account(account_id))


async def get_channel(request: web.Request) -> web.Response:
    account_id = path_id(request, "account_id")
    channel_id = path_id(request, "channel_id")
    await principal_for(request, account_id)
    call, role = _engine(request).leg(account_id, channel_id)
    return respond(request, call.describe(role))


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
    engine = _engine(request)
    spec = engine.features.modules.get(action)
    if spec is not None and spec.api_check is not None:
        # What the API can know up front (intercept: no such device) is a 4xx, not a 202.
        call, role = engine.leg(account_id, channel_id)
        await spec.api_check(call, role, module_data)
    call_id = engine.run_node(account_id, channel_id, Node(action, module_data))
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
    call_id = _engine(request).run_node(account_id, channel_id, Node.from_json(node))
    return respond(request, {"call_id": call_id, "action": "metaflow"}, status=202)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/accounts/{account_id}/channels", list_channels)
    resource = router.add_resource("/v2/accounts/{account_id}/channels/{channel_id}")
    resource.add_route("GET", get_channel)
    resource.add_route("POST", post_channel)
    resource.add_route("PUT", put_channel)
