"""The aiohttp application: middlewares that map every failure to the envelope, and routes."""

from __future__ import annotations

import logging
import re
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
from . import channels, devices, events, metaflows, ops, parking, recordings
from .context import AUTH_TOKEN, CONTEXT, REQUEST_ID, ApiContext
from .envelope import respond_error

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request by method and final status (outermost: sees the mapped errors)."""
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[CONTEXT].metrics.api_request(request.method, status)


@web.middleware
async def envelope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give each request its id, and turn every failure into the error envelope."""
    given_id = request.headers.get("X-Request-ID", "")
    request[REQUEST_ID] = given_id if _REQUEST_ID_RE.match(given_id) else uuid.uuid4().hex
    request[AUTH_TOKEN] = request.headers.get("X-Auth-Token", "")
    try:
        return await handler(request)
    except MetaflowsError as error:
        if error.status >= 500:
            logger.warning("request %s %s failed: %s", request.method, request.path, error.message)
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
        logger.exception("unhandled error in %s %s", request.method, request.path)
        return respond_error(request, MetaflowsError())


def create_app(context: ApiContext) -> web.Application:
    app = web.Application(
        middlewares=[metrics_middleware, envelope_middleware], client_max_size=MAX_BODY_BYTES
    )
    app[CONTEXT] = context
    metaflows.add_routes(app.router)
    devices.add_routes(app.router)
    channels.add_routes(app.router)
    recordings.add_routes(app.router)
    parking.add_routes(app.router)
    events.add_routes(app.router)
    ops.add_routes(app.router)
    speech_media.add_routes(app.router, lambda request: request.app[CONTEXT].speech)
    return app
