"""The typed ARI gateway against the simulated Asterisk's HTTP server (real loopback HTTP)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import pytest

from ari_metaflows.ari.gateway import AriError, AriGateway, AriTimeouts
from ari_metaflows.sim import SimulatedAsteriskServer
from ari_metaflows.testing.scenario import SimDriver

from ..helpers.engine_service import Service


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedAsteriskServer]:
    async with SimulatedAsteriskServer() as server:
        yield server


@pytest.fixture
async def gateway(sim: SimulatedAsteriskServer) -> AsyncIterator[AriGateway]:
    gateway = await AriGateway.connect(
        sim.url, sim.username, sim.password, "metaflows", AriTimeouts()
    )
    try:
        yield gateway
    finally:
        await gateway.close()


async def test_answers_are_plain_json(gateway: AriGateway) -> None:
    bridge_id = await gateway.create_bridge("mixing", "b-1")
    assert bridge_id == "b-1"
    (bridge,) = await gateway.bridges()
    assert (bridge["id"], bridge["bridge_type"], bridge["channels"]) == ("b-1", "mixing", [])
    await gateway.destroy_bridge("b-1")  # 204: no body
    assert await gateway.bridges() == []


async def test_requests_leave_no_garbage_for_the_collector(gateway: AriGateway) -> None:
    """aioari builds a class per ``client.<resource>.<operation>`` access; the gateway looks
    operations up itself, so a request creates no type (and no cycle through one)."""
    await gateway.bridges()  # warm: the connection pool
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for n in range(20):
            await gateway.create_bridge("mixing", f"b-{n}")
            await gateway.destroy_bridge(f"b-{n}")
        gc.collect()
        types = [o for o in gc.garbage if isinstance(o, type)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert types == []


async def test_an_answer_that_is_not_json_is_a_clear_error(
    sim: SimulatedAsteriskServer, gateway: AriGateway
) -> None:
    sim.core.garbled["GET", "/ari/bridges"] = (200, "<html>proxy error</html>")
    with pytest.raises(AriError) as raised:
        await gateway.bridges()
    assert raised.value.status == 502
    assert "bridges.list" in str(raised.value)
    sim.core.garbled.clear()
    assert await gateway.bridges() == []  # the gateway is still usable


async def test_websocket_credentials_travel_in_a_header(sim_service: Service) -> None:
    driver = sim_service.driver
    assert isinstance(driver, SimDriver)
    assert driver.sim.server.websocket_auth == ["header"]
    queries = [q for _, _, q in driver.sim.core.requests]
    assert all("api_key" not in q for q in queries)
