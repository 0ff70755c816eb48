"""``/v2/accounts/{A}/parked_calls``: the account's parking lot (in a cluster, of every
server), one slot of it, and retrieving a call from it (routed to the holder of its Asterisk)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from ..cluster.directory import CallDirectory
from ..cluster.routing import SendParkedOnAction
from ..errors import AsteriskUnavailable, InvalidRequest
from ..timefmt import iso_utc
from .context import CONTEXT
from .envelope import respond
from .requests import data_object, path_id, principal_for

_EXTENSION = re.compile(r"^[A-Za-z0-9*#+_-]{1,64}$")
_CONTEXT = re.compile(r"^[A-Za-z0-9_.+-]{1,80}$")


def _calls(request: web.Request) -> CallDirectory:
    """The call directory (``cluster.directory``): this instance's engines, and in a cluster
    the parking slots of the others, with retrievals routed to the holder."""
    context = request.app[CONTEXT]
    if isinstance(context.calls, CallDirectory):
        return context.calls
    if context.engine is None:
        raise AsteriskUnavailable("the call engine is not running")
    return CallDirectory({context.engine.asterisk: context.engine})


def _slot(request: web.Request) -> str:
    slot = request.match_info["slot"]
    if not slot.isdigit() or len(slot) > 8:
        raise InvalidRequest("slot must be a number")
    return slot


async def list_parked(request: web.Request) -> web.Response:
    account_id = path_id(request, "account_id")
    await principal_for(request, account_id)
    parked = await _calls(request).parked_calls(account_id)
    return respond(request, [_parked(described) for described in parked])


async def get_parked(request: web.Request) -> web.Response:
    """One slot of the account's parking lot (404 when nothing is parked there)."""
    account_id = path_id(request, "account_id")
    await principal_for(request, account_id)
    slot = _slot(request)
    return respond(request, _parked(await _calls(request).parked_call(account_id, slot)))


def _parked(described: dict[str, Any]) -> dict[str, Any]:
    """``parked_at`` in the one timestamp format of every answer (the call keeps Unix seconds)."""
    parked_at = described.get("parked_at")
    if isinstance(parked_at, (int, float)):
        described = {**described, "parked_at": iso_utc(parked_at)}
    return described


async def retrieve(request: web.Request) -> web.Response:
    """Send the parked party on to ``{"data": {"extension": …, "context": …, "priority": …}}``
    (context defaults to the transfer context): the dialplan there rings whoever retrieves it."""
    account_id = path_id(request, "account_id")
    await principal_for(request, account_id)
    slot = _slot(request)
    data = await data_object(request)
    extension = data.get("extension")
    context = data.get("context")
    priority = data.get("priority", 1)
    if not isinstance(extension, str) or not _EXTENSION.match(extension):
        raise InvalidRequest("data.extension must be a dialplan extension")
    calls = _calls(request)
    if context is None:
        context = calls.transfer_context
    if not isinstance(context, str) or not _CONTEXT.match(context):
        raise InvalidRequest("data.context must be a dialplan context name")
    if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 99999:
        raise InvalidRequest("data.priority must be a whole number from 1")
    await calls.send_parked_on(SendParkedOnAction(account_id, slot, context, extension, priority))
    return respond(request, {"slot": slot, "context": context, "extension": extension}, status=202)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/accounts/{account_id}/parked_calls", list_parked)
    resource = router.add_resource("/v2/accounts/{account_id}/parked_calls/{slot}")
    resource.add_route("GET", get_parked)
    resource.add_route("POST", retrieve)
