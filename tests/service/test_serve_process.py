"""``ari-metaflows serve`` as a real process with its embedded PostgreSQL: whatever ends it —
SIGTERM, SIGINT, a failed start, a stop while the database is still starting — the database
server it started stops too; a start-up error is one line on stderr and exit code 2."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import ADMIN_TOKEN, PROJECT_ROOT

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="reads process states from /proc"
)

LISTENING = re.compile(rb"REST API listening on (http://127\.0\.0\.1:\d+)/v2")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory for the module: the first test pays for initdb, the others reuse
    the cluster (each test starts and stops the server itself)."""
    return tmp_path_factory.mktemp("serve-data")


def serve_env(data_dir: Path, listen: str = "127.0.0.1:0", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOWS_", "ARI_"))}
    env.update(
        ARI_URL="http://127.0.0.1:9",  # nothing listens: the service runs and retries
        METAFLOWS_DATA_DIR=str(data_dir),
        METAFLOWS_ADMIN_TOKEN=ADMIN_TOKEN,
        METAFLOWS_API_LISTEN=listen,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


async def start_serve(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ari_metaflows",
        "serve",
        env=env,
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def wait_listening(process: asyncio.subprocess.Process) -> str:
    """The API's base URL, once ``serve`` logged it (its stderr is read up to that line)."""
    assert process.stderr is not None
    seen = b""
    async with asyncio.timeout(90):
        while True:
            line = await process.stderr.readline()
            assert line, f"serve exited before listening:\n{seen.decode()}"
            seen += line
            if match := LISTENING.search(line):
                return match.group(1).decode()


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphaned postmaster is reaped by whoever is init here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def servers_on(pgdata: Path) -> list[int]:
    """Pids of running postgres servers whose command line names ``pgdata``.

    A child the postmaster has just forked (a backend, a worker) shows the same command line
    until it renames itself, which takes a while on a loaded machine: it is not a server."""
    found: dict[int, int] = {}  # pid → parent pid
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        names_pgdata = cmdline[0].endswith(b"postgres") and str(pgdata).encode() in cmdline
        if names_pgdata and running(int(proc.name)):
            found[int(proc.name)] = parent
    return [pid for pid, parent in found.items() if parent not in found]


async def stop_with(process: asyncio.subprocess.Process, signum: int) -> tuple[int, str]:
    process.send_signal(signum)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err.decode()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_stop_signal_stops_the_embedded_database_too(data_dir: Path, signum: int) -> None:
    pgdata = data_dir / "pgdata"
    process = await start_serve(serve_env(data_dir))
    try:
        await wait_listening(process)
        pid = postmaster_pid(pgdata)
        assert servers_on(pgdata) == [pid]
    finally:
        code, err = await stop_with(process, signum)
    assert code == 0, err
    assert not running(pid)
    assert not (pgdata / "postmaster.pid").exists()
    assert servers_on(pgdata) == []
    assert "Traceback" not in err


async def test_a_busy_port_is_one_line_exit_code_2_and_the_database_stopped(
    data_dir: Path,
) -> None:
    pgdata = data_dir / "pgdata"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = serve_env(data_dir, f"127.0.0.1:{port}", METAFLOWS_LOG_LEVEL="WARNING")
        process = await start_serve(env)
        _, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 2, err.decode()
    assert err.decode().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port} for the REST API: address already in use"
    ]
    assert not (pgdata / "postmaster.pid").exists()
    assert servers_on(pgdata) == []


async def test_another_start_up_error_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    """The data directory cannot be created (a file is in the way)."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    env = serve_env(blocker / "data", METAFLOWS_LOG_LEVEL="WARNING")
    process = await start_serve(env)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2, err.decode()
    (line,) = err.decode().splitlines()
    assert line.startswith("error: "), line
    assert "Traceback" not in line


async def test_sigterm_while_the_embedded_database_starts_leaves_no_server(
    tmp_path: Path,
) -> None:
    """A fresh data directory: initdb and the first start take seconds; SIGTERM then."""
    data = tmp_path / "fresh"
    pgdata = data / "pgdata"
    process = await start_serve(serve_env(data))
    try:
        async with asyncio.timeout(60):
            while not pgdata.exists():
                assert process.returncode is None
                await asyncio.sleep(0.01)
    finally:
        code, err = await stop_with(process, signal.SIGTERM)
    assert code == 0, err
    assert "REST API listening" not in err  # it stopped before serving
    assert servers_on(pgdata) == []
    assert not (pgdata / "postmaster.pid").exists()


async def test_a_user_that_died_without_letting_go_does_not_keep_the_server_running(
    data_dir: Path,
) -> None:
    """A previous serve killed with SIGKILL stays listed as a user of the server; that must
    not keep the next serve from stopping it."""
    pgdata = data_dir / "pgdata"
    process = await start_serve(serve_env(data_dir))
    try:
        await wait_listening(process)
    finally:
        await stop_with(process, signal.SIGTERM)
    gone = await _dead_pid()
    (pgdata / ".handle_pids.json").write_text(json.dumps([gone]))

    process = await start_serve(serve_env(data_dir))
    try:
        await wait_listening(process)
        pid = postmaster_pid(pgdata)
    finally:
        code, err = await stop_with(process, signal.SIGTERM)
    assert code == 0, err
    assert not running(pid)
    assert servers_on(pgdata) == []


async def _dead_pid() -> int:
    child = await asyncio.create_subprocess_exec("true")
    await child.wait()
    return child.pid


@pytest.fixture(autouse=True)
def no_server_left(data_dir: Path) -> Iterator[None]:
    yield
    leftovers = servers_on(data_dir / "pgdata")
    for pid in leftovers:  # do not leave a server running for the next test or session
        os.kill(pid, signal.SIGQUIT)
    assert leftovers == []
