"""One lifecycle: what started is undone in reverse, even when a later step fails, and every
failure to stop is reported. Unit cases first, then the real service on a real database."""

from __future__ import annotations

import asyncio
import logging
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from ari_metaflows.app import open_service, serve
from ari_metaflows.config import ListenAddress, Settings
from ari_metaflows.lifecycle import Lifecycle, StartupError, TeardownError

from ..conftest import ADMIN_TOKEN


class Steps:
    """Five steps that record their start and their undo; some are told to fail."""

    def __init__(self, fail_start: int | None = None, fail_undo: set[int] | None = None) -> None:
        self.fail_start = fail_start
        self.fail_undo = fail_undo or set()
        self.log: list[str] = []

    async def start(self, life: Lifecycle, number: int) -> None:
        await asyncio.sleep(0)
        if number == self.fail_start:
            raise RuntimeError(f"step {number} cannot start")
        self.log.append(f"start {number}")
        life.push(f"step {number}", lambda: self.undo(number))

    async def undo(self, number: int) -> None:
        await asyncio.sleep(0)
        self.log.append(f"undo {number}")
        if number in self.fail_undo:
            raise OSError(f"step {number} cannot stop")

    async def run(self, life: Lifecycle) -> None:
        for number in range(1, 6):
            await self.start(life, number)


async def test_step_3_of_5_fails_steps_2_and_1_are_undone_in_reverse() -> None:
    steps = Steps(fail_start=3)
    with pytest.raises(RuntimeError, match="step 3 cannot start") as raised:
        async with Lifecycle("test") as life:
            await steps.run(life)
    assert steps.log == ["start 1", "start 2", "undo 2", "undo 1"]
    assert life.undone == ["step 2", "step 1"]
    assert not getattr(raised.value, "__notes__", [])  # undoing went fine
    assert len(life) == 0


async def test_a_failed_start_whose_undo_also_fails_reports_both(
    caplog: pytest.LogCaptureFixture,
) -> None:
    steps = Steps(fail_start=4, fail_undo={2})
    with (
        caplog.at_level(logging.ERROR, "ari_metaflows.lifecycle"),
        pytest.raises(RuntimeError, match="step 4 cannot start") as raised,
    ):
        async with Lifecycle("test") as life:
            await steps.run(life)
    assert steps.log == ["start 1", "start 2", "start 3", "undo 3", "undo 2", "undo 1"]
    assert any("step 2 cannot stop" in note for note in raised.value.__notes__)
    assert [r.getMessage() for r in caplog.records] == ["test: stopping step 2 failed"]


async def test_two_closers_fail_both_are_reported_and_the_rest_still_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    steps = Steps(fail_undo={2, 4})
    life = Lifecycle("test")
    await steps.run(life)
    with (
        caplog.at_level(logging.ERROR, "ari_metaflows.lifecycle"),
        pytest.raises(TeardownError) as raised,
    ):
        await life.aclose()
    assert steps.log[5:] == ["undo 5", "undo 4", "undo 3", "undo 2", "undo 1"]
    group = raised.value
    assert isinstance(group, ExceptionGroup)
    assert str(group) == "test: 2 step(s) failed to stop (2 sub-exceptions)"
    assert [str(e) for e in group.exceptions] == ["step 4 cannot stop", "step 2 cannot stop"]
    assert [e.__notes__ for e in group.exceptions] == [
        ["while stopping step 4"],
        ["while stopping step 2"],
    ]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["test: stopping step 4 failed", "test: stopping step 2 failed"]
    assert all(r.exc_info is not None for r in caplog.records)  # with their tracebacks
    await life.aclose()  # nothing left: a second close is a no-op


async def test_a_clean_stop_raises_nothing_and_undoes_everything_once() -> None:
    steps = Steps()
    async with Lifecycle("test") as life:
        await steps.run(life)
    assert steps.log[5:] == ["undo 5", "undo 4", "undo 3", "undo 2", "undo 1"]
    await life.aclose()
    assert steps.log.count("undo 1") == 1


async def test_cancelled_while_stopping_still_stops_the_rest_then_reraises() -> None:
    log: list[str] = []
    life = Lifecycle("test")
    life.push("first", lambda: _record(log, "first"))
    gate = asyncio.Event()

    async def slow() -> None:
        await gate.wait()  # cancelled here

    life.push("slow", slow)
    life.push("last", lambda: _record(log, "last"))
    closing = asyncio.create_task(life.aclose())
    await asyncio.sleep(0.01)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert log == ["last", "first"]
    assert life.undone == ["last", "slow", "first"]


async def _record(log: list[str], what: str) -> None:
    log.append(what)


# -- the real service ------------------------------------------------------------------------


async def _connections(admin_url: str, database: str) -> int:
    conn = await asyncpg.connect(admin_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database
        )
        return count
    finally:
        await conn.close()


def _database_name(url: str) -> str:
    return urllib.parse.urlsplit(url).path.lstrip("/")


def _settings(database_url: str, data_dir: Path, listen: ListenAddress) -> Settings:
    return Settings(
        ari_url="http://127.0.0.1:9",  # nothing listens: ARI keeps retrying, which is fine
        database_url=database_url,
        data_dir=data_dir,
        api_listen=listen,
        admin_token=ADMIN_TOKEN,
    )


def _tasks_named(*names: str) -> list[str]:
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name() in names]


async def test_open_service_failing_late_undoes_the_listener_journal_and_pool(
    database_url: str, pg_server_url: str, tmp_path: Path
) -> None:
    """The audit trail cannot start (its spill file is a directory): the recordings journal,
    the metaflow listener and the database pool that started before it are all undone."""
    name = _database_name(database_url)
    before = await _connections(pg_server_url, name)
    (tmp_path / "metaflow-events.pending.jsonl").mkdir()
    settings = _settings(database_url, tmp_path, ListenAddress("127.0.0.1", 0))
    with pytest.raises(IsADirectoryError):
        await open_service(settings, database_url)
    assert _tasks_named("metaflow-listener", "recordings-journal", "audit-trail") == []
    await asyncio.sleep(0.3)  # a leaked listener would have connected by now
    assert await _connections(pg_server_url, name) == before


async def test_open_service_then_close_leaves_nothing_behind(
    database_url: str, pg_server_url: str, tmp_path: Path
) -> None:
    name = _database_name(database_url)
    before = await _connections(pg_server_url, name)
    service = await open_service(
        _settings(database_url, tmp_path, ListenAddress("127.0.0.1", 0)), database_url
    )
    url = await service.start_api(service.settings.api_listen)
    service.start_ari()
    assert url.startswith("http://127.0.0.1:")
    await asyncio.wait_for(service.resolver.listening.wait(), 10)
    assert await _connections(pg_server_url, name) > before
    await service.close()
    assert service.lifecycle.undone == [
        "ARI connection",
        "REST API",
        "stored recordings client",
        "call engine",
        "pivot CDR posts",
        "speech engine",
        "audit trail",
        "recordings journal",
        "metaflow listener",
        "database pool",
    ]
    assert await _connections(pg_server_url, name) == before
    assert _tasks_named("ari", "metaflow-listener", "recordings-journal", "audit-trail") == []


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def test_serve_on_a_busy_port_is_one_startup_error_and_undoes_the_start(
    database_url: str, pg_server_url: str, tmp_path: Path, busy_port: int
) -> None:
    name = _database_name(database_url)
    before = await _connections(pg_server_url, name)
    settings = _settings(database_url, tmp_path, ListenAddress("127.0.0.1", busy_port))
    with pytest.raises(StartupError) as raised:
        await asyncio.wait_for(serve(settings, database_url), 30)
    message = str(raised.value)
    assert message == (
        f"cannot listen on 127.0.0.1:{busy_port} for the REST API: address already in use"
    )
    assert "\n" not in message
    assert await _connections(pg_server_url, name) == before


async def test_a_stop_while_waiting_for_the_database_ends_serve(tmp_path: Path) -> None:
    """Nothing answers at the database URL: the start waits (retrying); a stop ends it."""
    url = "postgresql://nobody@127.0.0.1:9/none"
    settings = _settings(url, tmp_path, ListenAddress("127.0.0.1", 0))
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(settings, url, stop=stop))
    await asyncio.sleep(0.3)
    assert not serving.done()
    stop.set()
    await asyncio.wait_for(serving, 10)
