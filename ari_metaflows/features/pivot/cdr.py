"""The call record a pivot's ``cdr_url`` gets when the call ends.

In Kazoo the pivot's ``cdr_url`` receives the call's CDR once the call is over. Here a pivot
node with ``cdr_url`` notes the URL on its call (``CdrNotes`` in
``call.feature_state["pivot"]``, with the call's start: the caller channel's
``creationtime``); when the call ends, each noted URL gets one ``POST`` of a JSON summary::

    {"call_id": "…", "account_id": "acc1", "legs": {"caller": "<channel id>", …},
     "owner_ids": ["u-alice"], "start": "2026-11-30T07:05:52.123Z",
     "end": "2026-11-30T07:06:40.008Z", "duration_s": 47.885,
     "hangup_by": "callee"}

``hangup_by`` is the first party leg that left. No hangup cause: the service leaves
``ChannelHangupRequest`` out of its ARI event filter (cost), and ``ChannelDestroyed``'s cause
stays in the call core. The POST runs off the
call's critical path: the call's end only starts a task that ``CdrSender`` owns, bounded by
``CDR_TIMEOUT``; it is not retried (a CDR is a notification, not a ledger). Its outcome is
logged with the call id and counted (``CdrSender.sent`` / ``failed``); at shutdown pending
posts get ``CLOSE_GRACE`` seconds, then are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from ...timefmt import iso_utc

logger = logging.getLogger(__name__)

CDR_TIMEOUT = 5.0  # seconds one POST may take, connection included
CLOSE_GRACE = 1.0  # seconds pending posts get at shutdown
MAX_URLS = 5  # distinct cdr_urls one call posts to
STATE = "pivot"


@dataclass
class CdrNotes:
    """A call's pivots that asked for its record (in ``call.feature_state["pivot"]``)."""

    urls: list[str] = field(default_factory=list)
    start: float | None = None  # Unix seconds: the caller channel's creation
    hangup_by: str | None = None  # the first party leg that left

    def add(self, url: str) -> bool:
        if url in self.urls or len(self.urls) >= MAX_URLS:
            return False
        self.urls.append(url)
        return True


def ari_time(value: object) -> float | None:
    """Unix seconds of an ARI date (``2026-11-30T07:05:52.123+0000``), None if not one."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except ValueError:
        return None


def summary(
    call_id: str,
    account_id: str | None,
    legs: dict[str, str],
    owner_ids: list[str],
    notes: CdrNotes,
    end: float,
) -> dict[str, Any]:
    """The JSON body posted to each cdr_url."""
    start = notes.start
    return {
        "call_id": call_id,
        "account_id": account_id,
        "legs": legs,
        "owner_ids": owner_ids,
        "start": iso_utc(start) if start is not None else None,
        "end": iso_utc(end),
        "duration_s": round(end - start, 3) if start is not None else None,
        "hangup_by": notes.hangup_by,
    }


class CdrSender:
    """Posts call records in the background; one task per POST, all awaited or cancelled at
    ``close``."""

    def __init__(self, timeout: float = CDR_TIMEOUT) -> None:
        self.timeout = timeout
        self.sent = 0
        self.failed = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def send(self, call_id: str, url: str, body: dict[str, Any]) -> None:
        """Start posting ``body`` to ``url``; returns at once."""
        if self._closed:
            logger.warning("call %s: CDR for %s not sent: the service is stopping", call_id, url)
            self.failed += 1
            return
        task = asyncio.create_task(self._post(call_id, url, body), name=f"cdr {call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, call_id: str, url: str, body: dict[str, Any]) -> None:
        started = time.monotonic()
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(url, json=body) as response,
            ):
                # Only the status counts; the body is not read (it could be anything).
                if response.status // 100 != 2:
                    raise CdrRefused(f"answered {response.status}")
        except asyncio.CancelledError:
            self.failed += 1
            logger.warning("call %s: CDR post to %s cancelled (the service stopped)", call_id, url)
            raise
        except TimeoutError:
            self._failure(call_id, url, f"no answer within {self.timeout:g} s")
        except (aiohttp.ClientError, OSError, ValueError, CdrRefused) as exc:
            self._failure(call_id, url, str(exc) or type(exc).__name__)
        else:
            self.sent += 1
            logger.info(
                "call %s: CDR posted to %s (%.0f ms)",
                call_id,
                url,
                (time.monotonic() - started) * 1000,
            )

    def _failure(self, call_id: str, url: str, reason: str) -> None:
        self.failed += 1
        logger.warning("call %s: CDR post to %s failed: %s", call_id, url, reason)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Let pending posts finish for ``grace`` seconds, then cancel the rest."""
        self._closed = True
        tasks = list(self._tasks)
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pending, return_exceptions=True)


class CdrRefused(Exception):
    """The cdr_url answered a status other than 2xx."""
