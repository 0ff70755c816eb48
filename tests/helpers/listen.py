"""Faults for the LISTEN loops (db/listener.py): their connections cut from the server side."""

from __future__ import annotations

import asyncpg


async def drop_listen_connections(database_url: str) -> None:
    """Terminate every backend sitting in LISTEN, as a database restart or a proxy would."""
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
