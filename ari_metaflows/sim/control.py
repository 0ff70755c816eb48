"""HTTP control of the simulator's phones, for people trying the service without Asterisk.

Same credentials as ARI. ``GET /sim/phones`` lists phones and what each hears;
``POST /sim/phones/{name}/call?to=EXT``, ``/answer``, ``/reject``, ``/hangup`` and
``/press?digits=…`` act like the person holding the phone. ``answer`` and ``reject`` wait up
to ``RING_WAIT`` seconds for the phone to ring (a script calling and answering at once works).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from .core import DialPhone, SimError, StasisApp
from .phones import SimPhone, SimulatedAsteriskServer

RING_WAIT = 5.0
_TASKS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("sim_tasks", set)


def demo_dialplan(sim: SimulatedAsteriskServer, phones: list[str], app: str) -> None:
    """Phones call each other by name through the app (dial mode), with a plain Dial()
    fallback when the app is down; ``default`` routes transfers to the phones."""
    for name in phones:
        sim.core.dialplan.add(
            "internal", name, StasisApp(app, ("dial", f"PJSIP/{name}", "30")), DialPhone(name)
        )
        sim.core.dialplan.add("default", name, DialPhone(name, timeout=20))


def add_control_routes(sim: SimulatedAsteriskServer) -> None:
    app = sim.server.app
    app[_TASKS] = set()

    def phone(request: web.Request) -> SimPhone:
        name = request.match_info["name"]
        found = sim.core.phones.get(name)
        if found is None:
            raise SimError(404, f"no phone {name}")
        return SimPhone(sim.core, found)

    def describe(item: SimPhone) -> dict[str, Any]:
        return {"name": item.name, "hears": str(item.hears()), "heard_dtmf": item.heard_dtmf}

    async def list_phones(request: web.Request) -> web.Response:
        return web.json_response(
            [describe(SimPhone(sim.core, p)) for p in sim.core.phones.values()]
        )

    async def call(request: web.Request) -> web.Response:
        target = request.query.get("to", "")
        if not target:
            raise SimError(400, "to= is required")
        phone(request).call(target, request.query.get("context", "internal"))
        return web.json_response(describe(phone(request)))

    async def answer(request: web.Request) -> web.Response:
        await phone(request).answer(timeout=RING_WAIT)
        return web.json_response(describe(phone(request)))

    async def reject(request: web.Request) -> web.Response:
        await phone(request).reject(timeout=RING_WAIT)
        return web.json_response(describe(phone(request)))

    async def hangup(request: web.Request) -> web.Response:
        await phone(request).hangup()
        return web.json_response(describe(phone(request)))

    async def press(request: web.Request) -> web.Response:
        digits = request.query.get("digits", "")
        if not digits or any(d not in "0123456789*#" for d in digits):
            raise SimError(400, "digits= must be DTMF digits")
        target = phone(request)
        task = asyncio.create_task(target.press(digits))
        request.app[_TASKS].add(task)
        task.add_done_callback(request.app[_TASKS].discard)
        return web.json_response(describe(target), status=202)

    async def control_errors(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except SimError as exc:
            return web.json_response({"message": exc.message}, status=exc.status)
        except TimeoutError:
            return web.json_response({"message": "that phone is not ringing"}, status=409)
        return response

    app.router.add_get("/sim/phones", list_phones)
    app.router.add_post("/sim/phones/{name}/call", call)
    app.router.add_post("/sim/phones/{name}/answer", answer)
    app.router.add_post("/sim/phones/{name}/reject", reject)
    app.router.add_post("/sim/phones/{name}/hangup", hangup)
    app.router.add_post("/sim/phones/{name}/press", press)
    app.middlewares.append(web.middleware(control_errors))
