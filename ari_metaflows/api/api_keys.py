"""Kazoo login: ``/v2/accounts/{A}/api_key`` (read, rotate) and ``PUT /v2/api_auth``.

A Kazoo client that knows only crossbar logs in the way crossbar lets it: it reads (or is
given) the account's api_key, trades it for a token with ``PUT /v2/api_auth``, and sends that
token on every later request. Rotation is ``PUT /v2/accounts/{A}/api_key``: the old key and
the sessions made with it stop working.
"""

from __future__ import annotations

from aiohttp import web

from ..errors import ValidationFailed
from ..metaflows.schema import ErrorCollector, Schema
from .context import AUTH_TOKEN, CONTEXT
from .envelope import respond
from .requests import data_object, path_id, principal_for

_API_AUTH_SCHEMA: Schema = {
    "type": "object",
    "required": ["api_key"],
    "properties": {"api_key": {"type": "string", "minLength": 1, "maxLength": 128}},
}


async def get_api_key(request: web.Request) -> web.Response:
    account_id = path_id(request, "account_id")
    await principal_for(request, account_id)
    key = await request.app[CONTEXT].authenticator.tokens.api_key(account_id)
    return respond(request, {"api_key": key})


async def rotate_api_key(request: web.Request) -> web.Response:
    account_id = path_id(request, "account_id")
    await principal_for(request, account_id)
    key = await request.app[CONTEXT].authenticator.tokens.rotate_api_key(account_id)
    return respond(request, {"api_key": key})


async def api_auth(request: web.Request) -> web.Response:
    """No token needed: the api_key is the credential. 201 with the token at the top level."""
    data = await data_object(request)
    errors = ErrorCollector()
    errors.check(data, _API_AUTH_SCHEMA, ())
    if errors:
        raise ValidationFailed(errors.errors)
    token, account_id = await request.app[CONTEXT].authenticator.login(data["api_key"])
    request[AUTH_TOKEN] = token
    return respond(request, {"account_id": account_id}, status=201)


def add_routes(router: web.UrlDispatcher) -> None:
    resource = router.add_resource("/v2/accounts/{account_id}/api_key")
    resource.add_route("GET", get_api_key)
    resource.add_route("PUT", rotate_api_key)
    router.add_put("/v2/api_auth", api_auth)
