"""The raw baseline, in its own process on the service's core while the service idles: a bare
aiohttp websocket client reading the same DTMF storm (frame, ``json.loads``, look up the
channel's queue, append). Its own process so that its 100,000s of buffered events do not shape
the service's memory figures. Prints "ready" once subscribed, then one JSON object of figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import aiohttp


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="the simulated Asterisk's events websocket")
    parser.add_argument("--app", required=True)
    parser.add_argument("--auth", required=True, help="Authorization header value")
    parser.add_argument("--channels", type=Path, required=True, help="channel ids, one a line")
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--cpu", type=int, default=0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    routes: dict[str, deque[dict[str, Any]]] = {
        line: deque() for line in args.channels.read_text().split()
    }
    async with (
        aiohttp.ClientSession(headers={"Authorization": args.auth}) as session,
        session.ws_connect(args.url, params={"app": args.app}) as ws,
    ):
        await asyncio.sleep(0.2)  # subscribed
        print("ready", flush=True)
        first = await ws.receive()  # the clock starts at the first event, as for the service
        cpu = time.process_time()
        started = time.perf_counter()
        event = json.loads(first.data)
        routes[event["channel"]["id"]].append(event)
        received = 1
        while received < args.expected:
            message = await ws.receive()
            event = json.loads(message.data)
            queue = routes.get(event["channel"]["id"])
            if queue is not None:
                queue.append(event)
                if len(queue) > 64:
                    queue.popleft()
            received += 1
        elapsed = time.perf_counter() - started
        cpu_used = time.process_time() - cpu
    print(
        json.dumps(
            {"events_per_s": received / elapsed, "cpu_ms_per_1000": cpu_used / received * 1e6}
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
