"""Shared fixtures: a real PostgreSQL (embedded), a fresh database per test, real HTTP servers.

One embedded server runs for the whole session; a migrated template database is cloned for each
test, which costs a few milliseconds and isolates tests completely.
"""

from __future__ import annotations

import asyncio
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from ari_metaflows.api.context import ApiContext
from ari_metaflows.api.server import create_app
from ari_metaflows.audit import EventStore
from ari_metaflows.auth.tokens import Authenticator, TokenStore
from ari_metaflows.db.database import Database
from ari_metaflows.db.embedded import embedded_postgres
from ari_metaflows.db.migrate import apply_migrations
from ari_metaflows.features import build_registry
from ari_metaflows.metaflows.documents import use_modules
from ari_metaflows.metaflows.store import MetaflowStore
from ari_metaflows.testing.scenario import Driver, SimDriver, driver_from_environment

from .helpers.engine_service import ADMIN_TOKEN as ADMIN_TOKEN  # re-exported for the tests
from .helpers.engine_service import Service, api_client, running_service

TEMPLATE_DB = "metaflows_template"

# Documents are validated with the modules of the features, as the service wires them.
use_modules(build_registry().modules)


def with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's server, stopped and deleted when the session ends (as ``serve`` does)."""
    with embedded_postgres(tmp_path_factory.mktemp("pg"), delete_on_exit=True) as url:
        _make_template(url)
        yield url


def _make_template(url: str) -> None:
    async def make_template() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
            await conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        finally:
            await conn.close()
        conn = await asyncpg.connect(with_database(url, TEMPLATE_DB))
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()

    asyncio.run(make_template())


@pytest.fixture
async def database_url(pg_server_url: str) -> AsyncIterator[str]:
    name = "t_" + uuid.uuid4().hex[:16]
    conn = await asyncpg.connect(pg_server_url)
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    finally:
        await conn.close()
    yield with_database(pg_server_url, name)
    conn = await asyncpg.connect(pg_server_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture
async def driver() -> AsyncIterator[Driver]:
    """Where scenario tests place calls: the simulator, or a real Asterisk when ARI_URL is set."""
    async with driver_from_environment() as running:
        yield running


@pytest.fixture
async def service(
    driver: Driver, database_url: str, db: Database, tmp_path: Path
) -> AsyncIterator[Service]:
    """The service's call side on the scenario driver (simulator or real Asterisk)."""
    async with running_service(driver, database_url, db, tmp_path / "journal.jsonl") as running:
        yield running


@pytest.fixture
async def sim_service(database_url: str, db: Database, tmp_path: Path) -> AsyncIterator[Service]:
    """The same, always on the simulator (for checks a real Asterisk cannot show)."""
    async with (
        SimDriver() as driver,
        running_service(driver, database_url, db, tmp_path / "journal.jsonl") as running,
    ):
        yield running


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.open()
    yield database
    await database.close()


@pytest.fixture
def store(db: Database) -> MetaflowStore:
    return MetaflowStore(db)


@pytest.fixture
def tokens(db: Database) -> TokenStore:
    return TokenStore(db)


@pytest.fixture
def api_context(db: Database, store: MetaflowStore, tokens: TokenStore) -> ApiContext:
    return ApiContext(
        store=store,
        authenticator=Authenticator(ADMIN_TOKEN, tokens),
        readiness={"database": db.ping},
        events=EventStore(db),
    )


@pytest.fixture
async def client(api_context: ApiContext) -> AsyncIterator[TestClient[Any, Any]]:
    """A real HTTP server on a loopback port, and a client session for it (no call side)."""
    server = TestServer(create_app(api_context), host="127.0.0.1")
    async with TestClient(server) as test_client:
        yield test_client


@pytest.fixture
def api_service(request: pytest.FixtureRequest) -> Service:
    """The running service ``api`` serves: ``sim_service`` when the test (or its module, with
    ``pytest.mark.usefixtures("sim_service")``) uses it, otherwise ``service``."""
    name = "sim_service" if "sim_service" in request.fixturenames else "service"
    running: Service = request.getfixturevalue(name)
    return running


@pytest.fixture
async def api(
    api_service: Service, db: Database, tokens: TokenStore
) -> AsyncIterator[TestClient[Any, Any]]:
    """The REST API on a loopback port, wired to the running service's engine and recordings."""
    async with api_client(api_service, tokens, db) as test_client:
        yield test_client


_LOOP_ERRORS: list[dict[str, Any]] = []


def _strict_loop() -> asyncio.AbstractEventLoop:
    """A loop that records what reaches its exception handler (e.g. a crashed task)."""
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _loop, context: _LOOP_ERRORS.append(context))
    return loop


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    return {"strict": _strict_loop}


@pytest.fixture(autouse=True)
def fail_on_loop_errors() -> Iterator[None]:
    """An exception that only the event loop saw fails the test that caused it."""
    _LOOP_ERRORS.clear()
    yield
    errors = list(_LOOP_ERRORS)
    _LOOP_ERRORS.clear()
    assert not errors, f"unhandled errors in the event loop: {errors}"


PROJECT_ROOT = Path(__file__).resolve().parent.parent
