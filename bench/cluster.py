"""Cluster benchmark (issue 18): ``python -m bench.cluster [--actions N] [--tries N]``.

Two ``serve`` processes (i1, i2) in cluster mode on an embedded PostgreSQL and one simulated
Asterisk in this process, with one live call. Measures the latency of ``POST …/channels/{id}``
(a ``play``) answered by the holder (local) and by the standby (routed over LISTEN/NOTIFY),
p50/p99; then the failover time over ``--tries`` rounds of ``kill -9`` of the holder (until the
other instance holds the lease and is connected to ARI), restarting the killed one as the new
standby each time. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from ari_metaflows.db.embedded import embedded_postgres
from ari_metaflows.sim import SimPhone, SimulatedAsteriskServer, StasisApp
from ari_metaflows.testing.eventually import eventually

ADMIN = "bench-admin-token-0123456789abcdef"
HEADERS = {"X-Auth-Token": ADMIN}
ROOT = Path(__file__).resolve().parent.parent
LEASE = re.compile(r'^metaflows_asterisk_lease\{asterisk="ast1",instance="([^"]+)"\} 1$', re.M)
CONNECTED = 'metaflows_asterisk_connected{asterisk="ast1"} 1'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 2),
        "count": len(ordered),
    }


class Node:
    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name, self.env, self.log = name, env, log
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, session: aiohttp.ClientSession) -> None:
        env = {**self.env, "METAFLOWS_API_LISTEN": f"127.0.0.1:{self.port}"}
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ari_metaflows", "serve", env=env, cwd=ROOT,
                stdout=asyncio.subprocess.DEVNULL, stderr=log,
            )  # fmt: skip

        async def health() -> int:
            async with session.get(self.base + "/healthz") as response:
                return response.status

        await eventually(
            health, lambda s: s == 200, timeout=60, interval=0.05,
            retry_on=(aiohttp.ClientConnectionError,), what=f"{self.name} up",
        )  # fmt: skip

    async def holds(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(self.base + "/metrics") as response:
                text = await response.text()
        except aiohttp.ClientError:
            return False
        return LEASE.findall(text) == [self.name] and CONNECTED in text

    async def stop(self, signum: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signum)
            await asyncio.wait_for(self.process.wait(), 30)


async def run(args: argparse.Namespace, workdir: Path, database_url: str) -> dict[str, Any]:
    async with SimulatedAsteriskServer() as sim, aiohttp.ClientSession() as session:
        sim.core.dialplan.add("internal", "1002", StasisApp("metaflows", ("dial", "PJSIP/1002")))
        sim.add_phone("1001", variables={"METAFLOWS_ACCOUNT_ID": "acc1"})
        sim.add_phone("1002", on_call="answer")
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOWS_", "ARI_"))}
        base_env.update(
            METAFLOWS_CLUSTER="on", METAFLOWS_ASTERISKS=f"ast1={sim.url}",
            ARI_USERNAME=sim.username, ARI_PASSWORD=sim.password,
            METAFLOWS_DATABASE_URL=database_url, METAFLOWS_ADMIN_TOKEN=ADMIN,
            METAFLOWS_LOG_LEVEL="WARNING",
        )  # fmt: skip
        nodes = [
            Node(name, {**base_env, "METAFLOWS_INSTANCE_ID": name,
                        "METAFLOWS_DATA_DIR": str(workdir / name)}, workdir / f"{name}.log")
            for name in ("i1", "i2")
        ]  # fmt: skip
        try:
            await nodes[0].start(session)
            await eventually(lambda: nodes[0].holds(session), timeout=10)
            await nodes[1].start(session)
            caller = SimPhone(sim.core, sim.core.phones["1001"])
            channel = caller.call("1002", "internal").id
            await caller.wait_hears("party", "1002")
            path = f"/v2/accounts/acc1/channels/{channel}"

            async def seen(node: Node) -> int:
                async with session.get(node.base + path, headers=HEADERS) as response:
                    return response.status

            await eventually(lambda: seen(nodes[1]), lambda s: s == 200, timeout=10)
            latency: dict[str, Any] = {}
            for label, node in (("local", nodes[0]), ("routed", nodes[1])):
                samples = []
                for _ in range(args.actions):
                    started = time.perf_counter()
                    async with session.post(
                        node.base + path,
                        json={"data": {"action": "play", "id": "beep"}},
                        headers=HEADERS,
                    ) as response:
                        await response.read()
                        assert response.status == 202, response.status
                    samples.append(time.perf_counter() - started)
                latency[label] = percentiles(samples)
            failovers = []
            for _ in range(args.tries):
                holder, standby = nodes if await nodes[0].holds(session) else nodes[::-1]
                killed = time.monotonic()
                await holder.stop(signal.SIGKILL)

                async def taken_over(standby: Node = standby) -> bool:
                    return await standby.holds(session)

                await eventually(taken_over, timeout=15, interval=0.02)
                failovers.append(time.monotonic() - killed)
                await holder.start(session)
            return {
                "action_latency": latency,
                "failover_s": {
                    "tries": len(failovers),
                    "median": round(statistics.median(failovers), 2),
                    "max": round(max(failovers), 2),
                    "all": [round(f, 2) for f in failovers],
                },
            }
        finally:
            for node in nodes:
                await node.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--actions", type=int, default=200, help="actions per kind")
    parser.add_argument("--tries", type=int, default=10, help="kill -9 rounds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        workdir = Path(tmp)
        with embedded_postgres(workdir / "pg", delete_on_exit=True) as url:
            result = asyncio.run(run(args, workdir, url))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
