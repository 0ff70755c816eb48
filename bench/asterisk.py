"""The benchmark's Asterisk: the simulator in a process (and core) of its own, with controls
to set up many calls and to send DTMF at the rate a C Asterisk could.

``POST /bench/calls?n=&start=`` places calls ``caller-i → callee-i`` (callees answer at once)
through ``Stasis(<app>,dial,…)``. ``POST /bench/press?digits=&rate=`` has every bridged caller
press digits through the simulator's own DTMF path, spread at ``rate`` codes per second.
``POST /bench/storm?rounds=&digits=&app=`` writes ``ChannelDtmfReceived`` events for every bridged
leg straight onto the websocket of ``app`` as pre-encoded frames (the simulator's Python event
path would be the bottleneck, not the service). ``POST /bench/hangup`` ends every call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import time
from typing import Any

from aiohttp import web

from ari_metaflows.sim.core import Channel, StasisApp
from ari_metaflows.sim.model import ari_time
from ari_metaflows.sim.phones import SimulatedAsteriskServer

USERNAME, PASSWORD = "bench", "bench-secret"
ACCOUNT = "acc-bench"


def text_frame(payload: bytes) -> bytes:
    """One unmasked (server → client) websocket text frame."""
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", 0x81, size) + payload
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


class BenchAsterisk:
    def __init__(self, sim: SimulatedAsteriskServer, app: str) -> None:
        self.sim = sim
        self.core = sim.core
        self.app = app
        # End-to-end dispatch as Asterisk sees it: the code's last digit event is written →
        # the first request of the action arrives. Keyed by the pressing channel.
        self.pressed_at: dict[str, float] = {}
        self.latencies: list[float] = []

    @web.middleware
    async def timing(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Match an action's first request (a play here) to the code that caused it, and a
        relayed digit (``/channels/{id}/dtmf``) to the press on the other leg of the bridge."""
        if self.pressed_at and request.method == "POST" and request.path.endswith("/dtmf"):
            now = time.perf_counter()
            receiver = self.core.channels.get(request.path.split("/")[-2])
            bridge = receiver.bridge if receiver is not None else None
            for channel in bridge.channels if bridge is not None else ():
                pressed = self.pressed_at.pop(channel.id, None)
                if pressed is not None:
                    self.latencies.append(now - pressed)
        elif self.pressed_at and request.method == "POST" and request.path.endswith("/play"):
            now = time.perf_counter()
            target = request.path.split("/")[-2]
            bridge = self.core.bridges.get(target)
            members = [c.id for c in bridge.channels] if bridge is not None else [target]
            for channel_id in members:
                pressed = self.pressed_at.pop(channel_id, None)
                if pressed is not None:
                    self.latencies.append(now - pressed)
        response: web.StreamResponse = await handler(request)
        return response

    def bridged(self) -> list[Channel]:
        """Phone legs that sit in a bridge (both parties of every connected call)."""
        return [
            c
            for c in self.core.channels.values()
            if not c.gone and c.bridge is not None and c.phone is not None
        ]

    async def calls(self, request: web.Request) -> web.Response:
        count = int(request.query.get("n", "1"))
        first = int(request.query.get("start", "0"))
        for i in range(first, first + count):
            variables = {"METAFLOWS_ACCOUNT_ID": ACCOUNT, "METAFLOWS_USER_ID": f"u{i}"}
            caller = self.core.add_phone(f"caller-{i}", variables=variables)
            self.core.add_phone(
                f"callee-{i}",
                variables={"METAFLOWS_ACCOUNT_ID": ACCOUNT},
                on_call="answer",
                ring_first=False,
            )
            self.core.dialplan.add(
                "internal", f"callee-{i}", StasisApp(self.app, ("dial", f"PJSIP/callee-{i}", "30"))
            )
            self.core.place_call(caller, f"callee-{i}", "internal")
            if i % 50 == 0:
                await asyncio.sleep(0)  # let the websocket writer run
        return web.json_response({"placed": count})

    async def press(self, request: web.Request) -> web.Response:
        digits = request.query.get("digits", "*9")
        rate = float(request.query.get("rate", "500"))
        callers = [c for c in self.bridged() if c.phone and c.phone.name.startswith("caller-")]
        loop = asyncio.get_running_loop()
        self.latencies = []

        def press(channel: Channel, digit: str, last: bool) -> None:
            self.core.phone_presses(channel, digit, 60)  # writes the event to the queue now
            if last:
                self.pressed_at[channel.id] = time.perf_counter()

        for n, channel in enumerate(callers):
            at = n / rate
            for k, digit in enumerate(digits):
                loop.call_later(at + k * 0.05, press, channel, digit, k == len(digits) - 1)
        return web.json_response({"codes": len(callers)})

    async def press_latencies(self, request: web.Request) -> web.Response:
        return web.json_response({"seconds": self.latencies, "unmatched": len(self.pressed_at)})

    async def storm(self, request: web.Request) -> web.Response:
        rounds = int(request.query.get("rounds", "10"))
        digits = request.query.get("digits", "*1345678#0")
        app = request.query.get("app", self.app)
        legs = self.bridged()
        frames: dict[tuple[str, str], bytes] = {}
        for channel in legs:
            snapshot = self.core.snapshot(channel)
            for digit in set(digits):
                event = {
                    "type": "ChannelDtmfReceived",
                    "timestamp": ari_time(time.time()),
                    "digit": digit,
                    "duration_ms": 100,
                    "channel": snapshot,
                    "asterisk_id": self.core.entity_id,
                    "application": app,
                }
                frames[channel.id, digit] = text_frame(json.dumps(event).encode())
        transport = self._transport(app)
        started = time.perf_counter()
        chunk: list[bytes] = []
        size = 0
        for r in range(rounds):
            digit = digits[r % len(digits)]
            for channel in legs:
                frame = frames[channel.id, digit]
                chunk.append(frame)
                size += len(frame)
                if size >= 256 * 1024:
                    await self._write(transport, chunk)
                    chunk, size = [], 0
        await self._write(transport, chunk)
        return web.json_response(
            {
                "events": rounds * len(legs),
                "legs": len(legs),
                "seconds": time.perf_counter() - started,
            }
        )

    def _transport(self, app: str) -> asyncio.Transport:
        for ws, apps in self.sim.server.websocket_apps.items():
            if app in apps and not ws.closed:
                transport: asyncio.Transport = ws._writer.transport  # type: ignore[union-attr]
                return transport
        raise web.HTTPNotFound(text=f"no websocket for {app}")

    @staticmethod
    async def _write(transport: asyncio.Transport, chunk: list[bytes]) -> None:
        transport.write(b"".join(chunk))
        while transport.get_write_buffer_size() > 4 * 1024 * 1024:  # noqa: ASYNC110 (no event for it)
            await asyncio.sleep(0.0005)

    async def hangup(self, request: web.Request) -> web.Response:
        phones = [c for c in self.core.channels.values() if not c.gone and c.phone is not None]
        for n, channel in enumerate(phones):
            if channel.phone is not None and not channel.gone:
                self.core.phone_hangs_up(channel.phone, channel)
            if n % 50 == 0:
                await asyncio.sleep(0)
        self.core.event_log.clear()
        self.core.requests.clear()
        return web.json_response({"hung_up": len(phones)})


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--app", default="metaflows")
    parser.add_argument("--cpu", type=int)
    args = parser.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    server = SimulatedAsteriskServer(username=USERNAME, password=PASSWORD)
    bench = BenchAsterisk(server, args.app)
    app = server.server.app
    app.router.add_post("/bench/calls", bench.calls)
    app.router.add_post("/bench/press", bench.press)
    app.router.add_post("/bench/storm", bench.storm)
    app.router.add_post("/bench/hangup", bench.hangup)
    app.router.add_get("/bench/press_latencies", bench.press_latencies)
    app.middlewares.append(bench.timing)
    await server.server.start("127.0.0.1", args.port)
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.server.stop()


if __name__ == "__main__":
    asyncio.run(main())
