"""The service's call side running in-process for scenario tests, and what they observe.

Used by the ``service`` and ``sim_service`` fixtures in conftest.py and by the scenario tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ari_metaflows.api.context import ApiContext
from ari_metaflows.api.server import create_app
from ari_metaflows.app import Retries, open_service
from ari_metaflows.app import Service as AppService
from ari_metaflows.ari.connection import AriConnection
from ari_metaflows.audit import AuditTrail, EventStore
from ari_metaflows.audit.trail import TrailLimits
from ari_metaflows.auth.tokens import Authenticator, TokenStore
from ari_metaflows.backoff import Backoff
from ari_metaflows.calls.engine import CallEngine
from ari_metaflows.config import Settings
from ari_metaflows.db.database import Database
from ari_metaflows.devices import DeviceStore
from ari_metaflows.metaflows.documents import validate_document
from ari_metaflows.metaflows.store import MetaflowStore, Owner
from ari_metaflows.metrics import Metrics
from ari_metaflows.recordings import RecordingJournal, RecordingStore
from ari_metaflows.sim import KeyTiming
from ari_metaflows.testing.eventually import eventually
from ari_metaflows.testing.scenario import Driver, SimDriver
from ari_metaflows.testing.scenario import Owner as PhoneOwner

ADMIN_TOKEN = "test-admin-token-0123456789"
ADMIN = {"X-Auth-Token": ADMIN_TOKEN}

ACCOUNT = "acc1"


@dataclass
class Service:
    driver: Driver
    store: MetaflowStore
    engine: CallEngine
    ari: AriConnection
    task: asyncio.Task[None]
    journal: RecordingJournal
    audit: AuditTrail
    metrics: Metrics
    app: AppService

    async def document(self, owner: Owner, **fields: Any) -> None:
        await self.store.put(owner, validate_document(fields))

    def matches(self) -> list[dict[str, Any]]:
        return list(self.engine.history)

    async def wait_matches(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        return await eventually(
            self.matches, lambda matches: len(matches) >= count, timeout=timeout
        )

    async def wait_no_calls(self, timeout: float = 5.0) -> None:
        await eventually(lambda: list(self.engine.calls), lambda calls: not calls, timeout=timeout)


# Quick retries: the tests cut and restore connections and should not wait long.
FAST_RETRIES = Retries(
    ari=Backoff(initial=0.05, maximum=0.2), writers=Backoff(initial=0.05, maximum=0.2)
)


async def start_service(
    driver: Driver, database_url: str, db: Database, journal_path: Path
) -> Service:
    """The service as ``serve`` opens it (``app.open_service``, one lifecycle), on the test's
    database pool ``db`` (which the test owns), its files next to ``journal_path``."""
    settings = Settings(
        ari_url=driver.ari_url,
        ari_username=driver.ari_username,
        ari_password=driver.ari_password,
        ari_app=driver.app,
        database_url=database_url,
        data_dir=journal_path.parent,
        default_account_id=driver.default_account,
        transfer_context=driver.transfer_context,
    )
    app = await open_service(
        settings, database_url, db=db, retries=FAST_RETRIES, audit_limits=TrailLimits(linger=0.01)
    )
    try:
        task = app.start_ari()
        await asyncio.wait_for(app.ari.connected.wait(), 10)
    except BaseException as exc:
        await app.lifecycle.undo_after(exc)
        raise
    return Service(
        driver, app.store, app.engine, app.ari, task, app.journal, app.audit, app.metrics, app
    )


async def stop_service(service: Service) -> None:
    """Undo everything ``start_service`` started, in reverse (``TeardownError`` if any fails)."""
    try:
        await service.app.close()
    finally:
        if service.journal is not service.app.journal:  # a test swapped in its own
            await service.journal.stop()


def sim_only(driver: Driver) -> SimDriver:
    if not isinstance(driver, SimDriver):
        pytest.skip("needs the simulator")
    return driver


async def connected_call(
    service: Service,
    caller: str = "alice",
    callee: str = "bob",
    caller_user: str | None = "u-alice",
) -> tuple[Any, Any]:
    driver = service.driver
    alice = driver.add_phone(caller, PhoneOwner(account=ACCOUNT, user=caller_user))
    bob = driver.add_phone(callee)
    await driver.call(alice, bob)
    await bob.answer()
    await alice.wait_hears("party", callee)
    await bob.wait_hears("party", caller)
    await eventually(
        lambda: [c.phase for c in service.engine.calls.values()],
        lambda phases: "connected" in phases,
        what="a connected call",
    )
    return alice, bob


FAST = KeyTiming(duration_ms=60, gap_ms=40)


# The name these tests have long used for ``eventually(predicate)``; new tests call eventually().
wait_until = eventually


def the_call(service: Service) -> Any:
    """The one call of a single-call scenario."""
    return next(iter(service.engine.calls.values()))


def requests_to(service: Service, suffix: str) -> list[dict[str, Any]]:
    """Query parameters of the simulator's requests to paths ending in ``suffix`` ([] on a
    real Asterisk, which does not tell)."""
    driver = service.driver
    if not isinstance(driver, SimDriver):
        return []
    return [q for _, path, q in driver.sim.core.requests if path.endswith(suffix)]


@contextlib.asynccontextmanager
async def running_service(
    driver: Driver, database_url: str, db: Database, journal_path: Path
) -> AsyncIterator[Service]:
    running = await start_service(driver, database_url, db, journal_path)
    try:
        yield running
        # End the test's calls while the app still runs: a real Asterisk keeps the websocket
        # session of an app that leaves calls behind (docs/asterisk-facts.md).
        await driver.hang_up_all()
        with contextlib.suppress(AssertionError):  # calls left over: stop_service ends them
            await running.wait_no_calls(timeout=3)
    finally:
        await stop_service(running)


@contextlib.asynccontextmanager
async def api_client(
    service: Service, tokens: TokenStore, db: Database
) -> AsyncIterator[TestClient[Any, Any]]:
    """The REST API on loopback, wired to the running service's engine and recordings."""
    context = ApiContext(
        store=service.store,
        authenticator=Authenticator(ADMIN_TOKEN, tokens),
        engine=service.engine,
        recordings=RecordingStore(db),
        journal=service.journal,
        events=EventStore(db),
        metrics=service.metrics,
        devices=DeviceStore(db),
    )
    async with TestClient(TestServer(create_app(context), host="127.0.0.1")) as client:
        yield client
