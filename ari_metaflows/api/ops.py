"""Operational endpoints: liveness, readiness, metrics and the OpenAPI document (no token)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..errors import NotReady
from .context import CONTEXT, ReadinessProbe
from .envelope import respond
from .openapi import openapi_document

READINESS_TIMEOUT = 2.0


async def healthz(request: web.Request) -> web.Response:
    return respond(request, {"status": "alive"})


async def _probe(check: ReadinessProbe) -> bool:
    try:
        async with asyncio.timeout(READINESS_TIMEOUT):
            return await check()
    except TimeoutError:
        return False


async def readyz(request: web.Request) -> web.Response:
    probes = request.app[CONTEXT].readiness
    results = await asyncio.gather(*(_probe(check) for check in probes.values()))
    checks = {name: "ok" if ok else "unavailable" for name, ok in zip(probes, results, strict=True)}
    if not all(results):
        raise NotReady("a dependency is unavailable", data={"checks": checks})
    return respond(request, {"status": "ready", "checks": checks})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; counts only, nothing about any account."""
    return web.Response(
        text=request.app[CONTEXT].metrics.render(),
        content_type="text/plain",
        headers={"Cache-Control": "no-store"},
        charset="utf-8",
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/metrics", metrics)
    router.add_get("/healthz", healthz)
    router.add_get("/readyz", readyz)
    router.add_get("/openapi.json", openapi)
