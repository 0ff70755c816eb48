"""``/v2/accounts/{A}/parked_calls``: the account's parking lot, and retrieving a call from it."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from ..errors import AsteriskUnavailable, InvalidRequest, NotFound
from ..timefmt import iso_utc
from .context import CONTEXT
from .envelope import respond
from .requests import data_object, path_id, principal_for

_EXTENSION = re.compile(r"^[A-Za-z0-9*#+_-]{1,64}$")
_CONTEXT = re.compile(r"^[A-Za-z0-9_.+-]{1,80}$")


def _engine(request: web.Request) -> Any:
    engine = request.app[CONTEXT].engine
    if engine is None or engine.gateway is None:
        raise AsteriskUnavailable("not connected to Asterisk")
    return engine


async def list_parked(request: web.Request) -> web.Response:
    account_id = path_id(request, "account_id")
    await principal_for(request, account_id)
    engine = request.app[CONTEXT].engine
    lot = engine.parking.of_account(account_id) if engine is not None else {}
    parked = [_parked(call.describe_parked()) for call in lot.values() if call.parked]
    return respond(request, parked)


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
    slot = request.match_info["slot"]
    await principal_for(request, account_id)
    if not slot.isdigit() or len(slot) > 8:
        raise InvalidRequest("slot must be a number")
    data = await data_object(request)
    extension = data.get("extension")
    context = data.get("context")
    priority = data.get("priority", 1)
    if not isinstance(extension, str) or not _EXTENSION.match(extension):
        raise InvalidRequest("data.extension must be a dialplan extension")
    engine = _engine(request)
    if context is None:
        context = engine.settings.transfer_context
    if not isinstance(context, str) or not _CONTEXT.match(context):
        raise InvalidRequest("data.context must be a dialplan context name")
    if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 99999:
        raise InvalidRequest("data.priority must be a whole number from 1")
    call = engine.parking.get(account_id, slot)
    if call is None:
        raise NotFound(f"nothing is parked in slot {slot}")
    call.submit(
        {"type": "_parked_to", "context": context, "extension": extension, "priority": priority}
    )
    return respond(request, {"slot": slot, "context": context, "extension": extension}, status=202)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/accounts/{account_id}/parked_calls", list_parked)
    router.add_post("/v2/accounts/{account_id}/parked_calls/{slot}", retrieve)
