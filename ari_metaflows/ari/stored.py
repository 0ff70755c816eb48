"""Stored recordings of every configured Asterisk, over plain HTTP (issue 18, SPEC §8a).

Reading or deleting a finished recording's file is not call control: any instance may do it on
any server it is configured with, whether or not it holds that server's lease or an ARI
websocket. A recording row names the server whose call made it; ``StoredFiles.on`` picks that
server, the first configured one for rows older than that column.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

import aiohttp

from ..config import AsteriskServer
from ..errors import AriError, AriUnavailable, AsteriskUnavailable, Gone
from ..metrics import mark_ari_request

if TYPE_CHECKING:  # gateway.py imports this module
    from .gateway import AriTimeouts


def _stored_url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/ari/recordings/stored/{urllib.parse.quote(name, safe='')}"


@contextlib.asynccontextmanager
async def open_stored_file(
    session: aiohttp.ClientSession, base_url: str, name: str, timeouts: AriTimeouts
) -> AsyncIterator[aiohttp.ClientResponse]:
    """The stored file, as a response to stream from (the swagger client would buffer and try
    to decode it). Only the wait for each chunk is limited, not the whole transfer."""
    try:
        response = await session.get(
            _stored_url(base_url, name) + "/file",
            timeout=aiohttp.ClientTimeout(
                total=None, connect=timeouts.connect, sock_read=timeouts.request
            ),
        )
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise AriUnavailable(f"recordings.getStoredFile: {type(exc).__name__}") from exc
    try:
        if response.status == 404:
            raise Gone(404, "Recording not found")
        if response.status >= 400:
            raise AriError(response.status, await response.text())
        yield response
    finally:
        response.release()


class StoredRecordings:
    """One Asterisk's ``/ari/recordings/stored`` (its own session: credentials in a header)."""

    def __init__(self, server: AsteriskServer, timeouts: AriTimeouts) -> None:
        self.server = server
        self.timeouts = timeouts
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        """Made on first use, inside the running loop."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={
                    "Authorization": aiohttp.encode_basic_auth(
                        self.server.username, self.server.password
                    )
                },
                timeout=aiohttp.ClientTimeout(
                    total=self.timeouts.request, sock_connect=self.timeouts.connect
                ),
            )
        return self._session

    def file(self, name: str) -> contextlib.AbstractAsyncContextManager[aiohttp.ClientResponse]:
        mark_ari_request()
        return open_stored_file(self._http(), self.server.url, name, self.timeouts)

    async def delete(self, name: str) -> None:
        """``Gone`` when Asterisk has no such file."""
        mark_ari_request()
        try:
            async with self._http().delete(_stored_url(self.server.url, name)) as response:
                status, text = response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise AriUnavailable(f"recordings.deleteStored: {type(exc).__name__}") from exc
        if status == 404:
            raise Gone(404, text or "Recording not found")
        if status >= 400:
            raise AriError(status, text or (response.reason or ""))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class StoredFiles:
    """Every configured server's stored recordings, by name; the first serves rows that do not
    name their server."""

    def __init__(self, servers: Iterable[AsteriskServer], timeouts: AriTimeouts) -> None:
        self.servers = {s.name: StoredRecordings(s, timeouts) for s in servers}
        if not self.servers:
            raise ValueError("StoredFiles needs at least one Asterisk server")
        self.first = next(iter(self.servers))

    def on(self, asterisk: str | None) -> StoredRecordings:
        """The server ``asterisk`` (``None``: the first); one no longer configured is 503,
        never another server's file of the same name."""
        found = self.servers.get(self.first if asterisk is None else asterisk)
        if found is None:
            raise AsteriskUnavailable(f"asterisk {asterisk!r} is not configured here")
        return found

    async def close(self) -> None:
        for stored in self.servers.values():
            await stored.close()
