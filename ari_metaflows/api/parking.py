"""``/v2/accounts/{A}/parked_calls``: the account's parking lot, and retrieving a call from it."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from ..errors import AsteriskUnavailable, InvalidRequest, NotFound
from ..features.park import ParkFeature
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


def _park(engine: Any) -> ParkFeature | None:
    """The parking service (the park feature of the running engine)."""
    feature = engine.features.get("park") if engine is not None else None
    return feature if isinstance(feature, ParkFeature) else None


async def list_parked(request: web.Request) -> web.Response:
    account_id = path_id(request, "account_id")
    await principal_for(request, account_id)
    park = _park(request.app[CONTEXT].engine)
    parked = park.parked_calls(account_id) if park is not None else []
    return respond(request, [_parked(described) for described in parked])


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
    park = _park(engine)
    if park is None or not park.send_parked_on(account_id, slot, context, extension, priority):
        raise NotFound(f"nothing is parked in slot {slot}")
    return respond(request, {"slot": slot, "context": context, "extension": extension}, status=202)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/accounts/{account_id}/parked_calls", list_parked)
    router.add_post("/v2/accounts/{account_id}/parked_calls/{slot}", retrieve)
