"""One PostgreSQL ``LISTEN`` kept up: a dedicated connection, reconnected with a ``Backoff``.

Used by the metaflow change listener (cache invalidation) and by the cluster's action router
(routed actions and their replies). ``listening`` is set while notifications can arrive and
cleared as soon as the connection is lost: whatever was sent meanwhile was missed, which is why
``on_listening`` runs after every (re)connection (the resolver drops its whole cache there).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

import asyncpg

from ..backoff import Backoff
from .database import CONNECTION_ERRORS

logger = logging.getLogger(__name__)

# asyncpg's listener callback: (connection, server pid, channel, payload).
OnNotify = Callable[[object, int, str, object], None]


async def listen_forever(
    url: str,
    channel: str,
    on_notify: OnNotify,
    *,
    backoff: Backoff,
    listening: asyncio.Event,
    what: str,
    on_listening: Callable[[], None] | None = None,
) -> None:
    """Listen on ``channel`` until cancelled; ``what`` names the listener in log lines."""
    delays = backoff.delays()
    while True:
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(url, timeout=10)
            closed = asyncio.Event()
            conn.add_termination_listener(functools.partial(_set_event, closed))
            await conn.add_listener(channel, on_notify)
            if on_listening is not None:
                on_listening()
            listening.set()
            delays.reset()
            await closed.wait()
            logger.warning("%s lost its connection", what)
        except CONNECTION_ERRORS as exc:
            logger.warning("%s cannot connect: %s", what, type(exc).__name__)
        finally:  # also when cancelled, before the cancellation goes on
            listening.clear()
            if conn is not None and not conn.is_closed():
                conn.terminate()
        await asyncio.sleep(delays.next_delay())


def _set_event(event: asyncio.Event, *_args: object) -> None:
    event.set()
