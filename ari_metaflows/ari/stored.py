"""Stored recordings of every configured Asterisk, over plain HTTP (issue 18, SPEC §8a).

Reading or deleting a finished recording's file is not call control: any instance may do it on
any server it is configured with, whether or not it holds that server's lease or an ARI
websocket. A recording row names the server whose call made it; ``StoredFiles.on`` picks that
server, the first configured one for rows older than that column.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import aiohttp

from ..config import AsteriskServer
from ..errors import AriError, AriUnavailable, AsteriskUnavailable, Gone
from ..metrics import mark_ari_request
from .gateway import AriTimeouts
from .stored_file import open_stored_file, stored_url


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
        return open_stored_file(
            self._http(),
            self.server.url,
            name,
            connect=self.timeouts.connect,
            read=self.timeouts.request,
        )

    async def delete(self, name: str) -> None:
        """``Gone`` when Asterisk has no such file."""
        mark_ari_request()
        try:
            async with self._http().delete(stored_url(self.server.url, name)) as response:
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
