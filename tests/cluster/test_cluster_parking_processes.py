"""Parked calls and recordings across ``serve`` processes (issue 18): every instance lists every
server's parked calls and retrieves them through the holder of their Asterisk; recording a live
call works from any instance; a stalled owner gives 503 for these too; the next holder of an
Asterisk adopts the calls parked there, which can still be retrieved."""

from __future__ import annotations

import signal
import time
from typing import Any

import aiohttp
import asyncpg

from ari_metaflows.testing.eventually import eventually

from .processes import Cluster, Instance, phone, start_all, up_calls

LOT = "/v2/accounts/acc1/parked_calls"
TO_1003 = {"data": {"extension": "1003", "context": "internal"}}


async def listed_on(instance: Instance, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
    status, body = await instance.call(session, "GET", LOT)
    assert status == 200, body
    parked: list[dict[str, Any]] = body["data"]
    return parked


async def park_alices_peer(
    cluster: Cluster,
    session: aiohttp.ClientSession,
    via: Instance,
    channel: str,
    **park: int,
) -> None:
    """alice (ast1) parks bob (1002) through ``via``; bob hears music on hold."""
    await eventually(
        lambda: via.call(session, "GET", f"/v2/accounts/acc1/channels/{channel}"),
        lambda answer: answer[0] == 200,
        timeout=5,
        what=f"{via.name} lists alice's leg",
    )
    status, body = await via.call(
        session,
        "POST",
        f"/v2/accounts/acc1/channels/{channel}",
        {"data": {"action": "park", **park}},
    )
    assert status == 202, body
    await phone(cluster.sims["ast1"], "1002").wait_hears("moh")


async def test_a_parked_call_is_listed_by_every_instance_and_retrieved_through_a_non_holder(
    cluster: Cluster,
) -> None:
    async with aiohttp.ClientSession() as session:
        await start_all(cluster, session)
        channels = await up_calls(cluster, session)
        _, i2, i3 = cluster.instances
        await park_alices_peer(cluster, session, i2, channels["ast1"])

        for instance in cluster.instances:

            async def listed(instance: Instance = instance) -> list[dict[str, Any]]:
                return await listed_on(instance, session)

            (parked,) = await eventually(
                listed,
                lambda parked: len(parked) == 1,
                timeout=5,
                what=f"{instance.name} lists the parked call",
            )
            assert parked["slot"] == "701"
            assert parked["name"].startswith("PJSIP/1002-")
            assert parked["parker"] == "PJSIP/1001"
            assert (parked["asterisk"], parked["instance"]) == ("ast1", "i1")
            assert parked["parked_at"].endswith("Z")  # the API's one timestamp format
        status, one = await i3.call(session, "GET", f"{LOT}/701")
        assert status == 200, one
        assert one["data"]["asterisk"] == "ast1"

        # Bad input answers as on a single instance.
        for method, path, body, expected in [
            ("GET", f"{LOT}/709", None, 404),
            ("POST", f"{LOT}/709", TO_1003, 404),
            ("GET", f"{LOT}/x7", None, 400),
            ("POST", f"{LOT}/701", {"data": {"extension": "no way"}}, 400),
            ("GET", "/v2/accounts/acc2/parked_calls/701", None, 404),
        ]:
            status, answer = await i3.call(session, method, path, body)
            assert status == expected, (method, path, answer)

        # Retrieved through i3, which holds neither server: i1 sends bob on to 1003.
        status, body = await i3.call(session, "POST", f"{LOT}/701", TO_1003)
        assert status == 202, body
        assert body["data"] == {"slot": "701", "context": "internal", "extension": "1003"}
        await phone(cluster.sims["ast1"], "1002").wait_hears("party", "1003")
        await eventually(lambda: listed_on(i2, session), lambda parked: parked == [], timeout=5)
        status, _ = await i2.call(session, "POST", f"{LOT}/701", TO_1003)
        assert status == 404  # nothing parked there any more


async def test_recording_a_live_call_requested_on_a_non_holder(cluster: Cluster) -> None:
    async with aiohttp.ClientSession() as session:
        await start_all(cluster, session)
        channels = await up_calls(cluster, session)
        _, i2, i3 = cluster.instances
        carol = f"/v2/accounts/acc1/channels/{channels['ast2']}"
        await eventually(
            lambda: i3.call(session, "GET", carol), lambda answer: answer[0] == 200, timeout=5
        )
        start = {
            "action": "metaflow",
            "data": {"module": "record_call", "data": {"action": "start"}},
        }
        status, body = await i3.call(session, "PUT", carol, start)
        assert status == 202, body
        sim = cluster.sims["ast2"]
        await eventually(
            lambda: len(sim.core.live_recordings), lambda n: n == 1, timeout=5, interval=0.05
        )

        async def recordings() -> list[dict[str, Any]]:
            status, body = await i2.call(session, "GET", "/v2/accounts/acc1/recordings")
            assert status == 200, body
            found: list[dict[str, Any]] = body["data"]
            return found

        (live,) = await eventually(
            recordings, lambda found: [r["state"] for r in found] == ["recording"], timeout=5
        )
        assert live["call_id"] == body["data"]["call_id"]
        stop = {"action": "metaflow", "data": {"module": "record_call", "data": {"action": "stop"}}}
        status, body = await i2.call(session, "PUT", carol, stop)
        assert status == 202, body
        await eventually(
            recordings, lambda found: [r["state"] for r in found] == ["finished"], timeout=5
        )
        status, _ = await i3.call(session, "PUT", "/v2/accounts/acc1/channels/no-such", start)
        assert status == 404


async def test_a_stalled_owner_gives_503_then_the_next_holder_adopts_the_parked_call(
    cluster: Cluster, database_url: str
) -> None:
    async with aiohttp.ClientSession() as session:
        await start_all(cluster, session, count=2)
        channels = await up_calls(cluster, session)
        i1, i2, _ = cluster.instances
        await park_alices_peer(cluster, session, i1, channels["ast1"])
        await eventually(lambda: listed_on(i2, session), lambda parked: len(parked) == 1)
        carol = f"/v2/accounts/acc1/channels/{channels['ast2']}"
        await eventually(
            lambda: i2.call(session, "GET", carol), lambda answer: answer[0] == 200, timeout=5
        )
        # A second call on ast1 (1005 → 1004), parked too: its party hangs up while i1 is
        # stalled, so the next holder frees its slot instead of adopting it.
        sim = cluster.sims["ast1"]
        second = phone(sim, "1005").call("1004", "internal").id
        await phone(sim, "1005").wait_hears("party", "1004")
        await eventually(
            lambda: i1.call(
                session,
                "POST",
                f"/v2/accounts/acc1/channels/{second}",
                {"data": {"action": "park"}},
            ),
            lambda answer: answer[0] == 202,
            timeout=5,
        )
        await phone(sim, "1004").wait_hears("moh")
        await eventually(lambda: listed_on(i2, session), lambda parked: len(parked) == 2)

        i1.signal(signal.SIGSTOP)
        await phone(sim, "1004").hangup()
        for method, path, body in [
            ("POST", f"{LOT}/701", TO_1003),
            ("POST", carol, {"data": {"action": "record_call"}}),
        ]:
            started = time.monotonic()
            status, answer = await i2.call(session, method, path, body)
            took = time.monotonic() - started
            print(f"stalled owner, {method} {path}: {status} in {took:.2f} s")
            assert status == 503, answer
            assert answer["data"]["message"].startswith("asterisk unavailable"), answer
            assert took < 4.0

        # i2 takes ast1 over and adopts bob, still waiting in his parking bridge; 1004's
        # slot is free again.
        await eventually(
            lambda: i2.leases(session), lambda held: held == {"ast1", "ast2"}, timeout=8
        )
        (parked,) = await eventually(
            lambda: listed_on(i2, session),
            lambda parked: len(parked) == 1 and parked[0]["instance"] == "i2",
            timeout=5,
            what="bob's parked call adopted by i2",
        )
        assert (parked["slot"], parked["asterisk"], parked["parker"]) == (
            "701",
            "ast1",
            "PJSIP/1001",
        )
        await phone(cluster.sims["ast1"], "1002").wait_hears("moh")  # not hung up

        async def slots() -> list[tuple[str, str]]:
            conn = await asyncpg.connect(database_url)
            try:
                rows = await conn.fetch("SELECT slot, instance FROM parking_slots ORDER BY slot")
            finally:
                await conn.close()
            return [(row["slot"], row["instance"]) for row in rows]

        await eventually(slots, lambda rows: rows == [("701", "i2")], timeout=5)
        status, body = await i2.call(session, "POST", f"{LOT}/701", TO_1003)
        assert status == 202, body
        await phone(cluster.sims["ast1"], "1002").wait_hears("party", "1003")


async def test_after_kill_9_a_parked_call_is_retrieved_through_an_instance_that_does_not_hold_it(
    cluster: Cluster,
) -> None:
    async with aiohttp.ClientSession() as session:
        await start_all(cluster, session)
        channels = await up_calls(cluster, session)
        i1, i2, i3 = cluster.instances
        await park_alices_peer(cluster, session, i1, channels["ast1"])
        i1.signal(signal.SIGKILL)
        held = await eventually(
            lambda: cluster.holders(session),
            lambda held: set(held) == {"ast1", "ast2"},
            timeout=8,
            interval=0.05,
            what="a new holder for each Asterisk",
        )
        heir = held["ast1"][0]
        other = i3 if heir == "i2" else i2
        (parked,) = await eventually(
            lambda: listed_on(other, session),
            lambda parked: len(parked) == 1 and parked[0]["instance"] == heir,
            timeout=5,
            what=f"bob's parked call adopted by {heir}",
        )
        assert parked["slot"] == "701"
        status, body = await other.call(session, "POST", f"{LOT}/701", TO_1003)
        assert status == 202, body
        await phone(cluster.sims["ast1"], "1002").wait_hears("party", "1003")
        await eventually(lambda: listed_on(other, session), lambda parked: parked == [])


async def test_an_adopted_parked_call_keeps_its_timeout_and_rings_the_parker_back(
    cluster: Cluster,
) -> None:
    async with aiohttp.ClientSession() as session:
        await start_all(cluster, session, count=2)
        channels = await up_calls(cluster, session)
        i1, i2, _ = cluster.instances
        await park_alices_peer(cluster, session, i1, channels["ast1"], timeout=6)
        await phone(cluster.sims["ast1"], "1001").wait_hears("idle")  # alice heard the slot
        i1.signal(signal.SIGKILL)
        await eventually(
            lambda: listed_on(i2, session),
            lambda parked: len(parked) == 1 and parked[0]["instance"] == "i2",
            timeout=8,
            what="bob's parked call adopted by i2",
        )
        # i2 runs the rest of the 6 s: alice's phone rings, and she has bob again.
        await phone(cluster.sims["ast1"], "1001").answer(timeout=10)
        await phone(cluster.sims["ast1"], "1002").wait_hears("party", "1001")
        await eventually(lambda: listed_on(i2, session), lambda parked: parked == [])
