"""API load for the benchmark, in its own process (and core): metaflow GETs, then POSTs.

Keeps ``--concurrency`` requests in flight over keep-alive connections for ``--seconds`` each
and prints one JSON object of figures on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

DOCUMENT = {
    "data": {
        "binding_digit": "*",
        "numbers": {"9": {"module": "record_call", "data": {"action": "toggle"}}},
        "patterns": {"2(\\d+)": {"module": "transfer", "data": {"transfer_type": "blind"}}},
    }
}


async def hammer(
    seconds: float, concurrency: int, request: Callable[[int], Awaitable[int]]
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            statuses[await request(next(counter))] += 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "per_s": len(latencies) / elapsed,
        "p99_ms": latencies[int(0.99 * len(latencies))] * 1000,
        "statuses": dict(statuses),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--cpu", type=int)
    args = parser.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    base = f"{args.url}/v2/accounts/{args.account}"
    body = json.dumps(DOCUMENT)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(
        base_url=None, connector=connector, headers={"X-Auth-Token": args.token}
    ) as session:

        async def get(_: int) -> int:
            async with session.get(f"{base}/metaflows") as response:
                await response.read()
                return response.status

        async def post(n: int) -> int:
            async with session.post(
                f"{base}/users/u{n % 5000}/metaflows",
                data=body,
                headers={"Content-Type": "application/json"},
            ) as response:
                await response.read()
                return response.status

        gets = await hammer(args.seconds, args.concurrency, get)
        posts = await hammer(args.seconds, args.concurrency, post)
    figures = {
        "metaflow GETs/s": gets["per_s"],
        "metaflow GET p99 ms": gets["p99_ms"],
        "metaflow POSTs/s": posts["per_s"],
        "metaflow POST p99 ms": posts["p99_ms"],
        "API statuses": json.dumps({"GET": gets["statuses"], "POST": posts["statuses"]}),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
