"""Several ``serve`` processes on one PostgreSQL and two simulated Asterisk servers (issue 18):
any instance lists and acts on calls of both servers; kill -9 of the holder hands its Asterisk
to another instance within 5 s and the surviving call keeps its codes; a stalled owner gives
503 quickly, never a hang, and then lets go of its Asterisk (no split brain)."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import asyncpg

from ari_metaflows.testing.eventually import eventually

from .processes import Cluster, Instance, phone, start_all, up_calls


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
