"""``GET /v2/accounts/{A}/metaflow_events``: the audit trail, newest first."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from ..audit import EventStore
from ..audit.store import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, EventFilter
from ..errors import DatastoreUnavailable, InvalidRequest
from .context import CONTEXT
from .envelope import paging, respond
from .requests import page_size, path_id, principal_for, query_id


def _store(request: web.Request) -> EventStore:
    store = request.app[CONTEXT].events
    if store is None:
        raise DatastoreUnavailable("the audit trail is not configured")
    return store


def _moment(request: web.Request, name: str) -> datetime | None:
    """Unix seconds (Kazoo clients send numbers) or an ISO 8601 timestamp (UTC if no zone)."""
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        if raw.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(raw), UTC)
        moment = datetime.fromisoformat(raw)
    except (ValueError, OverflowError, OSError):
        raise InvalidRequest(f"{name} must be Unix seconds or an ISO 8601 timestamp") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def list_events(request: web.Request) -> web.Response:
    account_id = path_id(request, "account_id")
    await principal_for(request, account_id)
    size = page_size(request, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    where = EventFilter(
        call_id=query_id(request, "call_id"),
        owner_id=query_id(request, "owner_id"),
        since=_moment(request, "created_from"),
        until=_moment(request, "created_to"),
    )
    if where.since is not None and where.until is not None and where.since >= where.until:
        raise InvalidRequest("created_from must be before created_to")
    start_key = request.query.get("start_key")
    page = await _store(request).page(account_id, where, page_size=size, start_key=start_key)
    return respond(
        request,
        [event.to_api() for event in page.events],
        paging=paging(len(page.events), start_key, page.next_start_key),
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/accounts/{account_id}/metaflow_events", list_events)
