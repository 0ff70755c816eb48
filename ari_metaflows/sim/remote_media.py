"""Remote media in the simulator: ``sound:http://…/file.wav`` as Asterisk 22 plays it.

Asterisk hands a ``sound:`` URI containing ``://`` to its media cache (``main/media_cache.c``),
whose ``res_http_media_cache`` backend downloads it with libcurl; see docs/asterisk-facts.md.
What a playback shows of it, and what this module reproduces with real HTTP:

* ``PlaybackStarted`` comes first (the playback is ``playing`` while the file downloads);
* a download that fails (no answer, a non-2xx status, a format Asterisk cannot read — the format
  comes from the Content-Type, else the URL path's extension; ``wav`` must be 8 kHz 16-bit
  mono) ends the playback with ``PlaybackFinished`` state ``failed`` (``PlaybackContinuing``
  to the next URI of a list);
* otherwise the file plays for its own length, then ``PlaybackFinished`` state ``done``;
* a download is cached by its whole URI: reused while ``Cache-Control: max-age`` (or
  ``Expires``) says it is fresh, then revalidated with ``HEAD`` + ``If-None-Match`` when it had
  an ``ETag`` (a 304 keeps it), else fetched again.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import io
import time
import urllib.parse
import wave
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import aiohttp

if TYPE_CHECKING:
    from .model import Playback


class PlaybackHost(Protocol):
    """What a remote playback needs of the simulator (``MediaSim``), named here so this module
    does not import the one that imports it."""

    def _later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle: ...

    def _next_media(self, playback: Playback) -> None: ...

    def _finish_playback(self, playback: Playback, state: str) -> None: ...


# Content-Type → format, as Asterisk's format modules register them (format_wav: wav, wav16).
_FORMATS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/x-wav;codec=pcm;bit=16;rate=8000": "wav",
    "audio/x-wav;codec=pcm;bit=16;rate=16000": "wav16",
}
_RATES = {"wav": 8000, "wav16": 16000}


class RemoteMediaError(Exception):
    """The media could not be had; Asterisk logs it and fails the playback."""


@dataclass
class _Entry:
    seconds: float
    expires: float
    etag: str | None


def remote_url(media_uri: str) -> str | None:
    """The URL a ``sound:`` media URI downloads, if it names a remote file."""
    scheme, _, rest = media_uri.partition(":")
    if scheme == "sound" and "://" in rest:
        return rest
    return None


def _expiry(headers: Mapping[str, str]) -> float:
    """When a download goes stale (res_http_media_cache: s-maxage/max-age, else Expires)."""
    values = {str(k).lower(): str(v) for k, v in dict(headers).items()}
    now = time.time()
    control = values.get("cache-control")
    if control is not None:
        for part in control.split(","):
            name, _, value = part.strip().partition("=")
            if name in ("s-maxage", "max-age") and value.isdigit():
                return now + int(value)
        return now
    expires = values.get("expires")
    if expires:
        with contextlib.suppress(TypeError, ValueError):
            return email.utils.parsedate_to_datetime(expires).timestamp()
    return now


def _wav_seconds(body: bytes, fmt: str) -> float:
    try:
        with wave.open(io.BytesIO(body), "rb") as wav:
            shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
            frames = wav.getnframes()
    except (EOFError, wave.Error) as exc:
        raise RemoteMediaError(f"not a readable WAV file: {exc}") from None
    if shape != (1, 2, _RATES[fmt]):
        raise RemoteMediaError(f"format_{fmt} cannot read a WAV of {shape} (channels, bytes, Hz)")
    return frames / shape[2]


@dataclass
class RemoteMedia:
    """The simulator's media cache; ``fetched`` lists every download (method, URL)."""

    timeout: float = 10.0
    fetched: list[tuple[str, str]] = field(default_factory=list)
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def seconds(self, url: str) -> float:
        """The length of the media at ``url``, downloading it unless a fresh copy is cached."""
        entry = self._entries.get(url)
        if entry is not None and (entry.expires > time.time() or await self._revalidate(url)):
            return entry.seconds
        self._entries.pop(url, None)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        self.fetched.append(("GET", url))
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url) as response,
            ):
                if response.status // 100 != 2:
                    raise RemoteMediaError(f"server returned {response.status}")
                body = await response.read()
                content_type = response.headers.get("Content-Type", "").replace(" ", "").lower()
                headers = response.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RemoteMediaError(f"cannot fetch {url}: {exc!r}") from None
        path = urllib.parse.urlsplit(url).path
        fmt = _FORMATS.get(content_type) or _FORMATS.get(content_type.partition(";")[0])
        if fmt is None:
            extension = path.rpartition(".")[2] if "." in path.rpartition("/")[2] else ""
            fmt = extension if extension in _RATES else None
        if fmt is None:
            raise RemoteMediaError(f"no format for Content-Type {content_type!r} or path {path!r}")
        seconds = _wav_seconds(body, fmt)
        self._entries[url] = _Entry(seconds, _expiry(headers), headers.get("ETag"))
        return seconds

    async def _revalidate(self, url: str) -> bool:
        entry = self._entries[url]
        if entry.etag is None:
            return False
        self.fetched.append(("HEAD", url))
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as s,
                s.head(url, headers={"If-None-Match": entry.etag}) as response,
            ):
                if response.status != 304:
                    return False
                entry.expires = _expiry(response.headers)
                return True
        except (aiohttp.ClientError, TimeoutError):
            return False

    def play(self, core: PlaybackHost, playback: Playback, url: str) -> None:
        """Download, then let the playback run for the file's length (or fail it)."""
        task = asyncio.create_task(self._play(core, playback, url))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _play(self, core: PlaybackHost, playback: Playback, url: str) -> None:
        index = playback.index
        try:
            seconds: float | None = await self.seconds(url)
        except RemoteMediaError:
            seconds = None
        if playback.state != "playing" or playback.index != index:
            return  # stopped, or its channel went, while downloading
        if seconds is not None:
            playback.sounding_since = time.monotonic()
            playback.timer = core._later(seconds, lambda: core._next_media(playback))
        elif playback.index + 1 < len(playback.media):
            core._next_media(playback)
        else:
            core._finish_playback(playback, "failed")

    def cancel(self) -> None:
        """Drop downloads under way and the cache (Asterisk restarted)."""
        for task in self._tasks:
            task.cancel()
        self._entries.clear()

    async def close(self) -> None:
        """Stop downloads under way and wait for them (Asterisk stopped)."""
        tasks = list(self._tasks)
        self.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
