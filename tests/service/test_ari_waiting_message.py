"""`serve` without a reachable Asterisk says once what it waits for, then retries quietly."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest

from ari_metaflows.ari.connection import AriConnection
from ari_metaflows.backoff import Backoff
from ari_metaflows.sim import SimulatedAsteriskServer

from ..helpers.engine_service import wait_until

LOGGER = "ari_metaflows.ari.connection"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens once the socket is closed


def connection(url: str, password: str = "never-logged") -> AriConnection:
    async def on_connected(_gateway: Any, _restarted: bool) -> None:
        return None

    return AriConnection(
        url=url,
        username="asterisk",
        password=password,
        app="metaflows",
        route=lambda _event: None,
        on_connected=on_connected,
        backoff=Backoff(initial=0.01, maximum=0.02),
    )


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


async def test_no_asterisk_is_said_once_with_the_url_and_the_simulator(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    url = f"http://127.0.0.1:{closed_port()}"
    ari = connection(url)
    task = asyncio.create_task(ari.run_forever())
    try:
        await wait_until(lambda: ari.reconnects >= 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    said = warnings[0]
    assert said.startswith(f"waiting for Asterisk: no ARI connection to {url} (")
    assert "./dev simulate" in said
    assert "ARI_URL=http://127.0.0.1:8088 ARI_USERNAME=asterisk ARI_PASSWORD=secret" in said
    assert "never-logged" not in caplog.text
    assert len(records(caplog, logging.INFO)) == 1  # the first "reconnecting in"
    quiet = records(caplog, logging.DEBUG)
    assert sum("failed" in m for m in quiet) >= 4
    assert sum("reconnecting to ARI" in m for m in quiet) >= 4


async def test_a_lost_asterisk_is_reported_once_per_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    sim = SimulatedAsteriskServer()
    url = await sim.server.start()
    port = int(url.rsplit(":", 1)[1])
    ari = connection(url, password=sim.password)
    task = asyncio.create_task(ari.run_forever())
    try:
        await asyncio.wait_for(ari.connected.wait(), 10)
        await sim.server.stop()
        before = ari.reconnects
        await wait_until(lambda: ari.reconnects >= before + 5)
        outage = records(caplog, logging.WARNING)
        # The loss is said once; the attempts while Asterisk stays away are debug only, and
        # it is not mistaken for "never had an Asterisk".
        assert len(outage) == 1, outage
        assert not any("waiting for Asterisk" in m for m in outage)

        await sim.server.start("127.0.0.1", port)
        await wait_until(lambda: ari.connected.is_set(), timeout=10)
        await sim.server.stop()
        again = ari.reconnects
        await wait_until(lambda: ari.reconnects >= again + 3)
        assert len(records(caplog, logging.WARNING)) == 2  # a new outage is said again
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.server.stop()
