"""The aiohttp application: middlewares that map every failure to the envelope, and routes.

Middlewares, outermost first: access log + metrics (one line per request, preflights included,
secrets stripped), CORS (answers preflights without a token, adds the headers to every answer),
envelope (request id, token, every failure → the error envelope).
"""

from __future__ import annotations

import logging
import re
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..errors import (
    InvalidRequest,
    MetaflowsError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
)
from ..features.tts import media as speech_media
from . import api_keys, channels, devices, events, metaflows, ops, parking, recordings
from .context import AUTH_TOKEN, CONTEXT, OFFLOAD, REQUEST_ID, ApiContext
from .envelope import respond_error
from .offload import Offloader
from .requests import token_of

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("ari_metaflows.access")

CORS_METHODS = "GET, POST, PUT, DELETE, PATCH, OPTIONS"
CORS_HEADERS = (
    "Content-Type, X-Auth-Token, If-Match, Authorization, X-Request-ID, X-Requested-With, "
    "Cache-Control, If-Modified-Since"
)
CORS_EXPOSE = "X-Request-ID, ETag, Allow, Location, Content-Disposition"
CORS_MAX_AGE = "86400"
_SECRET_QUERY_KEYS = frozenset({"auth_token", "api_key"})

MAX_BODY_BYTES = 256 * 1024
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def cors_headers(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": CORS_METHODS,
        "Access-Control-Allow-Headers": CORS_HEADERS,
        "Access-Control-Expose-Headers": CORS_EXPOSE,
        "Access-Control-Max-Age": CORS_MAX_AGE,
    }


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """As crossbar: any ``OPTIONS`` is a preflight answered here, without a token."""
    if request.method == "OPTIONS":
        return web.Response(status=204)
    return await handler(request)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer carries the CORS headers: errors, streamed audio, preflights alike."""
    response.headers.update(cors_headers(request.app[CONTEXT].cors_origin))


def loggable_path(request: web.Request) -> str:
    """The path and query with secrets (``auth_token``, ``api_key``) replaced by ``***``."""
    if not request.query_string:
        return request.path
    pairs = urllib.parse.parse_qsl(request.query_string, keep_blank_values=True)
    query = urllib.parse.urlencode(
        [(key, "***" if key.lower() in _SECRET_QUERY_KEYS else value) for key, value in pairs],
        safe="*",
    )
    return f"{request.path}?{query}"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give each request its id; count it by method and final status; write its access line."""
    given_id = request.headers.get("X-Request-ID", "")
    request[REQUEST_ID] = given_id if _REQUEST_ID_RE.match(given_id) else uuid.uuid4().hex
    status = 500
    started = time.perf_counter()
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[CONTEXT].metrics.api_request(request.method, status)
        if access_logger.isEnabledFor(logging.INFO):
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            path = loggable_path(request)
            request_id = request.get(REQUEST_ID, "")
            access_logger.info(
                "%s %s %d %.2fms %s",
                request.method,
                path,
                status,
                duration_ms,
                request_id,
                extra={
                    "http_method": request.method,
                    "http_path": path,
                    "http_status": status,
                    "duration_ms": duration_ms,
                    "request_id": request_id,
                },
            )


@web.middleware
async def envelope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Take the caller's token, and turn every failure into the error envelope."""
    request[AUTH_TOKEN] = token_of(request)
    try:
        return await handler(request)
    except MetaflowsError as error:
        if error.status >= 500:
            logger.warning(
                "request %s %s failed: %s", request.method, loggable_path(request), error.message
            )
        return respond_error(request, error)
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return respond_error(
            request,
            MethodNotAllowed(
                f"{request.method} is not allowed here; use {allowed}",
                headers={"Allow": allowed},
            ),
        )
    except web.HTTPRequestEntityTooLarge:
        return respond_error(
            request, PayloadTooLarge(f"the body must not exceed {MAX_BODY_BYTES} bytes")
        )
    except web.HTTPNotFound:
        return respond_error(request, NotFound(f"no such resource: {request.path}"))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status < 500:
            return respond_error(request, InvalidRequest(exc.reason))
        return respond_error(request, MetaflowsError())
    except Exception:
        logger.exception("unhandled error in %s %s", request.method, loggable_path(request))
        return respond_error(request, MetaflowsError())


def create_app(context: ApiContext) -> web.Application:
    app = web.Application(
        middlewares=[metrics_middleware, cors_middleware, envelope_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[CONTEXT] = context
    app[OFFLOAD] = Offloader()

    async def stop_offloader(app: web.Application) -> None:
        app[OFFLOAD].close()

    app.on_cleanup.append(stop_offloader)
    app.on_response_prepare.append(add_cors_headers)
    metaflows.add_routes(app.router)
    devices.add_routes(app.router)
    api_keys.add_routes(app.router)
    channels.add_routes(app.router)
    recordings.add_routes(app.router)
    parking.add_routes(app.router)
    events.add_routes(app.router)
    ops.add_routes(app.router)
    speech_media.add_routes(app.router, lambda request: request.app[CONTEXT].speech)
    return app
