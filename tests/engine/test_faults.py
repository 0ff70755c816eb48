"""Faults on the simulator (SPEC §8, issue 8): a stalled call, a database outage during calls
and API writes, a burst of new legs against a small pool. Websocket loss, Asterisk restarts and
service restarts are in test_engine_scenarios.py; SIGTERM of the real process in
service/test_cli.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ari_metaflows.ari.gateway import AriTimeouts
from ari_metaflows.auth.tokens import TokenStore
from ari_metaflows.db.database import Database, DatabaseTimeouts
from ari_metaflows.errors import DatastoreUnavailable
from ari_metaflows.metaflows.documents import validate_document
from ari_metaflows.metaflows.resolver import LegIdentity, MetaflowResolver
from ari_metaflows.metaflows.store import MetaflowStore, Owner
from ari_metaflows.testing.eventually import eventually
from ari_metaflows.testing.scenario import Driver

from ..helpers.engine_service import (
    ACCOUNT,
    ADMIN,
    FAST,
    Service,
    api_client,
    connected_call,
    sim_only,
    start_service,
    stop_service,
    wait_until,
)
from ..helpers.tcp_proxy import TcpProxy

BEEP = {"9": {"module": "play", "data": {"id": "beep"}}}


async def test_a_stalled_call_holds_up_no_other_call(service: Service) -> None:
    """Asterisk takes 2 s to create one call's bridge: that call's task waits (its events
    queue up in order), while the reader and every other call go on at full speed."""
    driver = sim_only(service.driver)
    await service.document(Owner.account(ACCOUNT), numbers=BEEP)
    alice, bob = await connected_call(service)
    driver.sim.core.stalls["POST", "/ari/bridges"] = 2.0
    second = asyncio.create_task(connected_call(service, "carol", "dave", "u-carol"))
    await wait_until(lambda: len(service.engine.calls) == 2)
    await asyncio.sleep(0.3)  # carol's call now waits on its bridge
    routed = service.metrics.ari_events
    loop = asyncio.get_running_loop()
    pressed = loop.time()
    await alice.press("*9", FAST)
    await bob.wait_hears("playback", "sound:beep", timeout=1.5)
    assert loop.time() - pressed < 1.0
    assert not second.done()  # still stalled, and nobody waited for it
    assert service.metrics.ari_events > routed
    carol, dave = await asyncio.wait_for(second, 5)
    await carol.wait_hears("party", "dave")
    await carol.press("*9", FAST)
    await dave.wait_hears("playback", "sound:beep")


async def test_calls_and_the_api_through_a_database_outage(
    driver: Driver, database_url: str, tmp_path: Path, tokens: TokenStore
) -> None:
    """While PostgreSQL is away: live calls keep their codes (cache), new calls connect, the API
    answers 503 to reads and writes. Afterwards nothing acknowledged is missing, the audit rows
    of the outage are stored, and a leg resolved during the outage gets its metaflows."""
    sim_only(driver)
    proxy = TcpProxy.for_url(database_url)
    await proxy.start()
    flaky_url = proxy.url_for(database_url)
    flaky = Database(flaky_url, timeouts=DatabaseTimeouts(acquire=0.5, command=2))
    await flaky.open()
    service = await start_service(driver, flaky_url, flaky, tmp_path / "journal.jsonl")
    try:
        await service.document(Owner.account(ACCOUNT), numbers=BEEP)
        async with api_client(service, tokens, flaky) as client:
            url = f"/v2/accounts/{ACCOUNT}/users/u-kept/metaflows"
            kept = {"data": {"numbers": {"5": {"module": "hangup"}}}}
            response = await client.post(url, json=kept, headers=ADMIN)
            assert response.status == 200  # acknowledged before the outage
            acknowledged = (await response.json())["data"]
            alice, bob = await connected_call(service)

            await proxy.cut()
            await alice.press("*9", FAST)
            await bob.wait_hears("playback", "sound:beep")
            carol, dave = await connected_call(service, "carol", "dave", "u-carol")
            body: dict[str, Any] | None
            for method, path, body in [
                ("POST", url, {"data": {"numbers": {}}}),
                ("GET", url, None),
                ("DELETE", url, None),
                ("GET", f"/v2/accounts/{ACCOUNT}/metaflow_events", None),
            ]:
                response = await client.request(method, path, json=body, headers=ADMIN)
                answer = await response.json()
                assert response.status == 503, (method, path)
                assert answer["status"] == "error"
            # the *9 (its beep played out) waits for the database
            await eventually(lambda: service.audit.pending, lambda pending: pending >= 1)

            await proxy.restore()
            assert await service.audit.flush(timeout=10)
            response = await client.get(url, headers=ADMIN)
            assert (await response.json())["data"] == acknowledged
            response = await client.get(f"/v2/accounts/{ACCOUNT}/metaflow_events", headers=ADMIN)
            (event,) = (await response.json())["data"]
            assert (event["module"], event["outcome"]) == ("play", "ok")
            # carol's leg could not be resolved during the outage; it is asked again.
            await wait_until(
                lambda: all(
                    leg.metaflows is not None
                    for call in service.engine.calls.values()
                    for leg in call.legs.values()
                ),
                timeout=10,
            )
            await carol.press("*9", FAST)
            await dave.wait_hears("playback", "sound:beep")
    finally:
        await driver.hang_up_all()
        await stop_service(service)
        await proxy.close()
        await flaky.close()


async def test_a_burst_of_new_legs_shares_few_database_loads(database_url: str) -> None:
    """Hundreds of legs of different users resolved at once through a pool of two: no pool
    timeouts, every leg gets its own merged metaflows, in a handful of round trips."""
    db = Database(database_url, timeouts=DatabaseTimeouts(acquire=0.5))
    await db.open(max_size=2)
    try:
        store = MetaflowStore(db)
        await store.put(Owner.account("burst"), validate_document({"numbers": BEEP}))
        await store.put(
            Owner.user("burst", "u7"),
            validate_document({"numbers": {"7": {"module": "hangup"}}}),
        )
        resolver = MetaflowResolver(store)
        legs = [LegIdentity("burst", user_id=f"u{i}", device_id=f"d{i}") for i in range(400)]
        resolved = await asyncio.gather(*(resolver.resolve(leg) for leg in legs))
        assert all("9" in flows.numbers for flows in resolved)
        assert set(resolved[7].numbers) == {"7", "9"}
        assert "7" not in resolved[8].numbers
        assert resolver.loads <= 5
    finally:
        await db.close()


async def test_a_failed_load_fails_every_waiter_and_the_next_one_retries(
    database_url: str,
) -> None:
    proxy = TcpProxy.for_url(database_url)
    await proxy.start()
    db = Database(proxy.url_for(database_url), timeouts=DatabaseTimeouts(acquire=0.3))
    await db.open(max_size=2)
    try:
        resolver = MetaflowResolver(MetaflowStore(db))
        await proxy.cut()
        outcomes = await asyncio.gather(
            *(resolver.resolve(LegIdentity("acc", user_id=f"u{i}")) for i in range(20)),
            return_exceptions=True,
        )
        assert all(isinstance(o, DatastoreUnavailable) for o in outcomes)
        # A waiter cancelled mid-load does not cancel the load for the others.
        await proxy.restore()
        doomed = asyncio.create_task(resolver.resolve(LegIdentity("acc", user_id="x")))
        survivor = asyncio.create_task(resolver.resolve(LegIdentity("acc", user_id="x")))
        await asyncio.sleep(0)
        doomed.cancel()
        assert (await survivor).is_empty
        await resolver.stop()
    finally:
        await proxy.close()
        await db.close()


async def impatient(service: Service, request_timeout: float) -> None:
    """Reconnect with a short ARI request timeout (the next session's gateway uses it)."""
    service.ari.timeouts = AriTimeouts(request=request_timeout)
    await sim_only(service.driver).sim.drop_websockets()
    await asyncio.sleep(0.01)
    await asyncio.wait_for(service.ari.connected.wait(), 5)


@pytest.mark.parametrize(
    "stalled",
    [
        "/ari/channels/mf-[^/]+",  # originating the callee
        "/ari/channels/[^/]+/answer",  # answering the caller once the callee answered
        "/ari/bridges",  # creating the call's bridge
        "/ari/bridges/[^/]+/addChannel",  # putting both legs in it
    ],
)
async def test_asterisk_too_slow_while_setting_up_sends_the_caller_on(
    service: Service, stalled: str
) -> None:
    """A request that times out (Asterisk overloaded) at any step of the set-up must not strand
    the caller in Stasis: the callee is hung up, the caller goes on with CONGESTION, and the
    call's bridge does not outlive it. (A step's requests go in one write, which has the time
    of its requests one by one: up to four times 0.3 s here; the stall outlasts that.)"""
    driver = sim_only(service.driver)
    await impatient(service, request_timeout=0.3)
    driver.sim.core.stalls["POST", stalled] = 1.5
    alice = driver.add_phone("alice")
    bob = driver.add_phone("bob")
    await driver.call(alice, bob)
    channel = alice.phone.channel
    if stalled != "/ari/channels/mf-[^/]+":
        await bob.answer()
    await alice.wait_idle(timeout=5)
    assert channel is not None
    assert channel.variables["METAFLOWS_DIALSTATUS"] == "CONGESTION"
    assert channel.history[-1] == "(end)"
    await service.wait_no_calls()
    await bob.wait_idle(timeout=5)
    driver.sim.core.stalls.clear()
    await asyncio.sleep(1.5)  # the stalled request completes in Asterisk meanwhile
    await wait_until(lambda: not driver.sim.core.bridges, timeout=3)


@pytest.mark.parametrize(
    "refused",
    [
        "/ari/channels/[^/]+/answer",
        "/ari/bridges",
        "/ari/bridges/[^/]+/addChannel",
    ],
)
async def test_asterisk_refusing_a_set_up_step_sends_the_caller_on(
    service: Service, refused: str
) -> None:
    """Answer, bridge and join go to Asterisk in one write (ARI requests in order on one
    connection): a refusal of any of them, not only the first, sends the caller on with
    CONGESTION and hangs up the callee, and whatever the batch did create (the bridge, when
    only the answer was refused) is destroyed with the call."""
    driver = sim_only(service.driver)
    driver.sim.core.garbled["POST", refused] = (500, '{"message": "Internal Server Error"}')
    alice = driver.add_phone("alice")
    bob = driver.add_phone("bob")
    await driver.call(alice, bob)
    channel = alice.phone.channel
    await bob.answer()
    await alice.wait_idle(timeout=5)
    assert channel is not None
    assert channel.variables["METAFLOWS_DIALSTATUS"] == "CONGESTION"
    await service.wait_no_calls()
    await bob.wait_idle(timeout=5)
    made = [(m, p) for m, p, _ in driver.sim.core.requests if m == "POST" and "/bridges" in p]
    assert made, "the bridge was asked for with the answer"
    await wait_until(lambda: not driver.sim.core.bridges, timeout=3)


async def test_owner_variables_unreadable_the_call_still_connects(service: Service) -> None:
    """Without channelvars in ari.conf the owner is read variable by variable; when Asterisk
    is too slow to answer those reads the call connects all the same, without metaflows."""
    driver = sim_only(service.driver)
    await service.document(Owner.account(ACCOUNT), numbers=BEEP)
    await impatient(service, request_timeout=0.3)
    driver.sim.core.channelvars = ()
    driver.sim.core.stalls["GET", "/ari/channels/[^/]+/variable"] = 0.5
    alice, bob = await connected_call(service)
    (call,) = service.engine.calls.values()
    assert [leg.identity for leg in call.legs.values()] == [None, None]
    assert not call.collectors
    await alice.press("*9", FAST)
    await asyncio.sleep(0.3)
    assert service.matches() == []
    await alice.hangup()
    await bob.wait_idle()
    await service.wait_no_calls()


async def test_an_originate_given_up_on_but_carried_out_rings_nobody(service: Service) -> None:
    """Asterisk may still carry out an originate whose answer came too late for us (while the
    caller is still there): the channel is hung up at its first event, not left ringing a
    phone until Asterisk's own timeout; one that never shows up is hung up once more later."""
    driver = sim_only(service.driver)
    # A phone that answers within 0.2 s without a 180: the channel's only event before its
    # answer is its Dial, which names it "peer".
    driver.sim.core.add_phone("bob", on_call="answer", answer_after=0.2, ring_first=False)
    gateway = service.engine.gateway_or_raise()
    service.engine.hangup_when_seen("mf-late")
    (originated,) = await gateway.in_order(
        gateway.originate_request("PJSIP/bob", app_args="callee,ended", channel_id="mf-late")
    )
    assert not isinstance(originated, Exception)
    core = driver.sim.core
    # Long before the later hangup (2 x the 5 s request timeout): at that first event.
    await core.wait_for(lambda: not core.channels, timeout=1)
    await asyncio.sleep(0.3)
    answered = [e for e in core.event_log if e["type"] == "Dial" and e["dialstatus"] == "ANSWER"]
    assert not answered
    await service.wait_no_calls()


async def test_an_originate_timed_out_is_hung_up_again_later(service: Service) -> None:
    driver = sim_only(service.driver)
    await impatient(service, request_timeout=0.3)
    core = driver.sim.core
    core.stalls["POST", "/ari/channels/mf-[^/]+"] = 1.0  # over the originate + ring write's 0.6 s
    alice = driver.add_phone("alice")
    bob = driver.add_phone("bob")
    await driver.call(alice, bob)
    await alice.wait_idle(timeout=5)
    originated = [
        p for m, p, _ in core.requests if m == "POST" and p.startswith("/ari/channels/mf-")
    ]
    assert len(originated) == 1

    def hangups() -> int:
        return len([p for m, p, _ in core.requests if m == "DELETE" and p == originated[0]])

    # Once when the call failed, once when Asterisk has surely handled the originate.
    await wait_until(lambda: hangups() >= 2, timeout=3)
    await bob.wait_idle()
