"""Several ``serve`` processes on one PostgreSQL and two simulated Asterisk servers (issue 18):
any instance lists and acts on calls of both servers; kill -9 of the holder hands its Asterisk
to another instance within 5 s and the surviving call keeps its codes; a stalled owner gives
503 quickly, never a hang, and then lets go of its Asterisk (no split brain)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from ari_metaflows.sim import SimPhone, SimulatedAsteriskServer, StasisApp
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
def _kept_on_failure(instances: list[Instance]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        for instance in instances:
            print(f"----- {instance.name} -----\n{instance.text()[-4000:]}")
        raise


@pytest.fixture
async def cluster(database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
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
        with _kept_on_failure(instances):
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


async def test_any_instance_lists_and_acts_on_calls_of_both_servers_and_kill_9_fails_over(
    cluster: Cluster,
) -> None:
    async with aiohttp.ClientSession() as session:
        await start_all(cluster, session)
        channels = await up_calls(cluster, session)
        i1, i2, i3 = cluster.instances

        # Every instance lists both calls, each tagged with its Asterisk.
        for instance in cluster.instances:

            async def listed(instance: Instance = instance) -> dict[str, str]:
                status, body = await instance.call(session, "GET", "/v2/accounts/acc1/channels")
                assert status == 200
                return {leg["id"]: leg["asterisk"] for leg in body["data"]}

            seen = await eventually(
                listed,
                lambda legs: all(legs.get(c) == a for a, c in channels.items()),
                timeout=5,
                what=f"{instance.name} lists both calls",
            )
            assert seen[channels["ast1"]] == "ast1"
            status, leg = await instance.call(
                session, "GET", f"/v2/accounts/acc1/channels/{channels['ast2']}"
            )
            assert status == 200
            assert leg["data"]["asterisk"] == "ast2"

        # A standby acts on a call it does not hold: routed to i1, same status as local.
        status, body = await i2.call(
            session,
            "POST",
            f"/v2/accounts/acc1/channels/{channels['ast2']}",
            {"data": {"action": "play", "id": "beep"}},
        )
        assert status == 202, body
        await phone(cluster.sims["ast2"], "2002").wait_hears("playback", "sound:beep")
        status, _ = await i3.call(
            session,
            "POST",
            "/v2/accounts/acc1/channels/no-such-channel",
            {"data": {"action": "play", "id": "beep"}},
        )
        assert status == 404

        # kill -9 of the holder of both servers: another instance holds each within 5 s.
        killed = time.monotonic()
        i1.signal(signal.SIGKILL)
        held = await eventually(
            lambda: cluster.holders(session),
            lambda held: set(held) == {"ast1", "ast2"},
            timeout=8,
            interval=0.05,
            what="a new holder for each Asterisk",
        )
        failover = time.monotonic() - killed
        print(f"failover after kill -9: {failover:.2f} s ({held})")
        assert failover < 5.0
        assert all(len(holders) == 1 for holders in held.values()), held

        # The new holder adopted the call: the survivors list it from its rows, codes armed.
        status, leg = await eventually(
            lambda: i3.call(session, "GET", f"/v2/accounts/acc1/channels/{channels['ast1']}"),
            lambda answer: answer[0] == 200 and answer[1]["data"]["instance"] == held["ast1"][0],
            timeout=5,
            what="alice's leg adopted",
        )
        assert leg["data"]["asterisk"] == "ast1"
        assert leg["data"]["peer"]

        # The call that was up before still runs its codes (once its metaflows are loaded).
        async def code_runs() -> bool:
            await phone(cluster.sims["ast1"], "1001").press("*9")
            try:
                await phone(cluster.sims["ast1"], "1002").wait_hears(
                    "playback", "sound:welcome", timeout=1
                )
            except AssertionError:
                return False
            return True

        await eventually(code_runs, timeout=6, what="*9 after the takeover")


async def test_a_stalled_owner_gives_503_not_a_hang_then_lets_go(cluster: Cluster) -> None:
    async with aiohttp.ClientSession() as session:
        await start_all(cluster, session, count=2)
        channels = await up_calls(cluster, session)
        i1, i2, _ = cluster.instances
        await eventually(
            lambda: i2.call(session, "GET", f"/v2/accounts/acc1/channels/{channels['ast1']}"),
            lambda answer: answer[0] == 200,
            timeout=5,
        )
        i1.signal(signal.SIGSTOP)
        started = time.monotonic()
        status, body = await i2.call(
            session,
            "POST",
            f"/v2/accounts/acc1/channels/{channels['ast1']}",
            {"data": {"action": "play", "id": "beep"}},
        )
        took = time.monotonic() - started
        print(f"stalled owner answered for in {took:.2f} s: {status}")
        assert status == 503, body
        assert body["message"] == "asterisk_unreachable"  # the error id (crossbar style)
        assert body["data"]["message"].startswith("asterisk unavailable"), body
        assert took < 4.0
        # i2 takes both servers over; i1, woken, finds its lease gone and stays off ARI.
        await eventually(
            lambda: i2.leases(session), lambda held: held == {"ast1", "ast2"}, timeout=8
        )
        i1.signal(signal.SIGCONT)
        await eventually(lambda: i1.leases(session), lambda held: not held, timeout=5)
        await asyncio.sleep(1.5)  # i1 does not take anything back while i2 renews
        assert await i1.leases(session) == set()
        assert (await cluster.holders(session)) == {"ast1": ["i2"], "ast2": ["i2"]}


async def test_parking_slots_never_collide_across_servers(
    cluster: Cluster, database_url: str
) -> None:
    async with aiohttp.ClientSession() as session:
        await start_all(cluster, session, count=2)
        channels = await up_calls(cluster, session)
        _, i2, _ = cluster.instances
        for channel in channels.values():

            async def listed(channel: str = channel) -> int:
                status, _ = await i2.call(session, "GET", f"/v2/accounts/acc1/channels/{channel}")
                return status

            await eventually(listed, lambda status: status == 200, timeout=5)
        # Both calls parked at once, through the instance that holds neither server.
        answers = await asyncio.gather(
            *(
                i2.call(
                    session,
                    "POST",
                    f"/v2/accounts/acc1/channels/{channel}",
                    {"data": {"action": "park"}},
                )
                for channel in channels.values()
            )
        )
        assert [status for status, _ in answers] == [202, 202], answers
        for sim, callee in ((cluster.sims["ast1"], "1002"), (cluster.sims["ast2"], "2002")):
            await phone(sim, callee).wait_hears("moh")

        async def slots() -> list[tuple[str, str]]:
            conn = await asyncpg.connect(database_url)
            try:
                rows = await conn.fetch(
                    "SELECT slot, asterisk FROM parking_slots WHERE account_id = 'acc1' "
                    "ORDER BY slot"
                )
            finally:
                await conn.close()
            return [(row["slot"], row["asterisk"]) for row in rows]

        taken = await eventually(slots, lambda rows: len(rows) == 2, timeout=5)
        assert [slot for slot, _ in taken] == ["701", "702"]  # one account, two servers
        assert {asterisk for _, asterisk in taken} == {"ast1", "ast2"}
