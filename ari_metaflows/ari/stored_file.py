"""One stored recording's file over plain HTTP: shared by ``AriGateway`` and ``StoredFiles``
(a leaf module, so that neither imports the other)."""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import AsyncIterator

import aiohttp

from ..errors import AriError, AriUnavailable, Gone


def stored_url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/ari/recordings/stored/{urllib.parse.quote(name, safe='')}"


@contextlib.asynccontextmanager
async def open_stored_file(
    session: aiohttp.ClientSession, base_url: str, name: str, *, connect: float, read: float
) -> AsyncIterator[aiohttp.ClientResponse]:
    """The stored file, as a response to stream from (the swagger client would buffer and try
    to decode it). Only the connection (``connect``) and the wait for each chunk (``read``)
    are limited, not the whole transfer."""
    try:
        response = await session.get(
            stored_url(base_url, name) + "/file",
            timeout=aiohttp.ClientTimeout(total=None, connect=connect, sock_read=read),
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
