"""``/v2/accounts/{A}[/users/{U}|/devices/{D}]/metaflows``: one owner's raw document."""

from __future__ import annotations

from aiohttp import web

from ..metaflows.documents import vet_document_patterns
from ..metaflows.store import Owner, OwnerKind
from .context import CONTEXT
from .envelope import respond
from .requests import if_match, metaflow_document, path_id, principal_for


async def _owner(request: web.Request) -> Owner:
    account_id = path_id(request, "account_id")
    kind = OwnerKind(request.match_info.get("kind", "account").rstrip("s"))
    owner_id = account_id if kind is OwnerKind.ACCOUNT else path_id(request, "owner_id")
    await principal_for(request, account_id)
    return Owner(account_id, kind, owner_id)


async def get_metaflows(request: web.Request) -> web.Response:
    owner = await _owner(request)
    stored = await request.app[CONTEXT].store.get(owner)
    return respond(request, stored.document or {}, revision=stored.revision)


async def post_metaflows(request: web.Request) -> web.Response:
    owner = await _owner(request)
    expected = if_match(request)
    document = await metaflow_document(request)
    await vet_document_patterns(document)
    stored = await request.app[CONTEXT].store.put(owner, document, if_match=expected)
    return respond(request, stored.document, revision=stored.revision)


async def delete_metaflows(request: web.Request) -> web.Response:
    owner = await _owner(request)
    stored = await request.app[CONTEXT].store.delete(owner, if_match=if_match(request))
    return respond(request, {}, revision=stored.revision)


def add_routes(router: web.UrlDispatcher) -> None:
    for path in (
        "/v2/accounts/{account_id}/metaflows",
        "/v2/accounts/{account_id}/{kind:users|devices}/{owner_id}/metaflows",
    ):
        resource = router.add_resource(path)
        resource.add_route("GET", get_metaflows)
        resource.add_route("POST", post_metaflows)
        resource.add_route("DELETE", delete_metaflows)
