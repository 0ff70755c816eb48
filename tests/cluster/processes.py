"""The harness of the cluster's process tests (issue 18): two simulated Asterisk servers and up
to three ``ari-metaflows serve`` processes on one embedded PostgreSQL (the ``cluster`` fixture
is in conftest.py)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from ari_metaflows.sim import DialPhone, SimPhone, SimulatedAsteriskServer, StasisApp
from ari_metaflows.testing.eventually import eventually

from ..conftest import ADMIN_TOKEN, PROJECT_ROOT

AUTH = {"X-Auth-Token": ADMIN_TOKEN}
LEASE = re.compile(r'^metaflows_asterisk_lease\{asterisk="([^"]+)",instance="([^"]+)"\} 1$', re.M)
CONNECTED = re.compile(r'^metaflows_asterisk_connected\{asterisk="([^"]+)"\} 1$', re.M)
ALICE = {"METAFLOWS_ACCOUNT_ID": "acc1", "METAFLOWS_USER_ID": "alice"}
CAROL = {"METAFLOWS_ACCOUNT_ID": "acc1", "METAFLOWS_USER_ID": "carol"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Instance:
    """One ``ari-metaflows serve`` process of the cluster (its log in a file)."""

    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.env = env
        self.log = log
        self.base = f"http://127.0.0.1:{env['METAFLOWS_API_LISTEN'].rpartition(':')[2]}"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "ari_metaflows",
                "serve",
                env=self.env,
                cwd=PROJECT_ROOT,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        async def health() -> int:
            assert self.process is not None
            assert self.process.returncode is None, self.text()
            async with session.get(self.base + "/healthz") as response:
                return response.status

        await eventually(
            health,
            lambda status: status == 200,
            timeout=30,
            interval=0.05,
            retry_on=(aiohttp.ClientConnectionError,),
            what=f"{self.name}'s /healthz",
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGCONT)
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def leases(self, session: aiohttp.ClientSession) -> set[str]:
        """The Asterisk servers this instance holds the lease of and is connected to (its
        /metrics)."""
        async with session.get(self.base + "/metrics", timeout=aiohttp.ClientTimeout(1)) as r:
            text = await r.text()
        held = {ast for ast, who in LEASE.findall(text) if who == self.name}
        return held & set(CONNECTED.findall(text))

    async def call(
        self, session: aiohttp.ClientSession, method: str, path: str, body: Any = None
    ) -> tuple[int, Any]:
        async with session.request(method, self.base + path, json=body, headers=AUTH) as r:
            return r.status, await r.json()


class Cluster:
    def __init__(self, sims: dict[str, SimulatedAsteriskServer], instances: list[Instance]):
        self.sims = sims
        self.instances = instances

    async def holders(self, session: aiohttp.ClientSession) -> dict[str, list[str]]:
        held: dict[str, list[str]] = {}
        for instance in self.instances:
            if instance.process is None or instance.process.returncode is not None:
                continue
            try:
                for asterisk in await instance.leases(session):
                    held.setdefault(asterisk, []).append(instance.name)
            except (aiohttp.ClientError, TimeoutError):
                continue  # stopped or killed
        return held


@contextmanager
def kept_on_failure(instances: list[Instance]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        for instance in instances:
            print(f"----- {instance.name} -----\n{instance.text()[-4000:]}")
        raise


@asynccontextmanager
async def running_cluster(database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    async with AsyncExitStack() as stack:
        sims = {
            "ast1": await stack.enter_async_context(SimulatedAsteriskServer()),
            "ast2": await stack.enter_async_context(SimulatedAsteriskServer()),
        }
        # Channel ids unique across the servers, as `systemname` makes them on real ones.
        sims["ast2"].core._epoch += 100_000
        for sim, (caller, callee, owner) in zip(
            sims.values(), (("1001", "1002", ALICE), ("2001", "2002", CAROL)), strict=True
        ):
            sim.core.dialplan.add(
                "internal", callee, StasisApp("metaflows", ("dial", f"PJSIP/{callee}"))
            )
            sim.add_phone(caller, variables=owner)
            sim.add_phone(callee, on_call="answer")
            # Where a retrieval through the API sends a parked party (1003 / 2003 answer).
            target = caller[0] + "003"
            sim.core.dialplan.add("internal", target, DialPhone(target))
            sim.add_phone(target, on_call="answer")
            # A second call of the same owner: 1005 → 1004 (2005 → 2004).
            second, other = caller[0] + "005", caller[0] + "004"
            sim.core.dialplan.add(
                "internal", other, StasisApp("metaflows", ("dial", f"PJSIP/{other}"))
            )
            sim.add_phone(second, variables=owner)
            sim.add_phone(other, on_call="answer")
            # A parked call not retrieved in time rings its parker back (slot 701).
            sim.core.dialplan.add("metaflows-park-timeout", "701", DialPhone(caller, 20))
        first = next(iter(sims.values()))
        asterisks = ",".join(f"{name}={sim.url}" for name, sim in sims.items())
        instances = []
        for name in ("i1", "i2", "i3"):
            env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOWS_", "ARI_"))}
            env.update(
                METAFLOWS_CLUSTER="on",
                METAFLOWS_ASTERISKS=asterisks,
                METAFLOWS_INSTANCE_ID=name,
                ARI_USERNAME=first.username,
                ARI_PASSWORD=first.password,
                METAFLOWS_DATABASE_URL=database_url,
                METAFLOWS_ADMIN_TOKEN=ADMIN_TOKEN,
                METAFLOWS_API_LISTEN=f"127.0.0.1:{free_port()}",
                METAFLOWS_DATA_DIR=str(tmp_path / name),
                PYTHONUNBUFFERED="1",
            )
            instances.append(Instance(name, env, tmp_path / f"{name}.log"))
        for instance in instances:
            stack.push_async_callback(instance.stop)
        with kept_on_failure(instances):
            yield Cluster(sims, instances)


def phone(sim: SimulatedAsteriskServer, name: str) -> SimPhone:
    return SimPhone(sim.core, sim.core.phones[name])


async def start_all(cluster: Cluster, session: aiohttp.ClientSession, count: int = 3) -> None:
    """The first instance takes both Asterisk servers; the others are standbys."""
    first, *others = cluster.instances[:count]
    await first.start()
    await first.wait_ready(session)
    await eventually(
        lambda: first.leases(session), lambda held: held == {"ast1", "ast2"}, timeout=10
    )
    await asyncio.gather(*(i.start() for i in others))
    await asyncio.gather(*(i.wait_ready(session) for i in others))


async def up_calls(cluster: Cluster, session: aiohttp.ClientSession) -> dict[str, str]:
    """alice (ast1) and carol (ast2) in a call each, with *9 → play; their channel ids."""
    api = cluster.instances[0]
    for user, sound in (("alice", "welcome"), ("carol", "welcome")):
        status, _ = await api.call(
            session,
            "POST",
            f"/v2/accounts/acc1/users/{user}/metaflows",
            {"data": {"numbers": {"9": {"module": "play", "data": {"id": sound}}}}},
        )
        assert status in (200, 201)
    channels = {}
    for name, (caller, callee) in zip(
        cluster.sims, (("1001", "1002"), ("2001", "2002")), strict=True
    ):
        sim = cluster.sims[name]
        channel = phone(sim, caller).call(callee, "internal")
        await phone(sim, caller).wait_hears("party", callee)
        channels[name] = channel.id
    return channels
