"""Signed, expiring URLs for cached speech, and the HTTP route Asterisk fetches them from.

Asterisk 22 plays ``sound:http://host/path/file.wav`` by downloading it through
``res_http_media_cache`` (+ ``res_curl``) into its media cache (docs/asterisk-facts.md). The
route needs no API token — Asterisk sends none — so the URL itself is the credential:
``/media/tts/<key>.wav?expires=<unix time>&sig=<HMAC-SHA256(secret, "tts/<key>.wav:<expires>")>``.
A wrong or expired signature answers 403, an unknown key 404. The answer carries
``Content-Type: audio/wav`` (res_http_media_cache takes the file's format from the Content-Type
first, then from the path's extension: both say ``wav``, format_wav's 8 kHz WAV),
``Cache-Control: max-age`` up to the expiry and an ``ETag``, so Asterisk's media cache reuses
the download and revalidates it with ``HEAD`` + ``If-None-Match`` (answered 304) rather than
fetching again. Every request on the route is noted in ``SpeechMedia.fetches`` (method, key,
status, User-Agent; the latest ``FETCH_LOG`` of them): what Asterisk fetched, for metrics,
debugging and the real-Asterisk tests.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ...errors import Forbidden, MetaflowsError, NotFound
from .engine import SpeechCache, is_key

if TYPE_CHECKING:
    from ...config import Settings

logger = logging.getLogger(__name__)

DEFAULT_TTL = 600.0  # long enough for a playback queued behind others on the same target
MAX_WAV_BYTES = 4 * 1024 * 1024  # 1,000 characters of speech stay far below this
FETCH_LOG = 256  # requests on the speech route remembered (SpeechMedia.fetches)


@dataclass(frozen=True)
class MediaFetch:
    """One request on the speech route: who fetched which file, and the answer."""

    method: str
    key: str
    status: int
    user_agent: str


class MediaSigner:
    """Signs and checks media URLs with one secret."""

    def __init__(self, secret: bytes, base_url: str) -> None:
        if len(secret) < 16:
            raise ValueError("the media secret must be at least 16 bytes")
        self._secret = secret
        self.base_url = base_url.rstrip("/")

    def _signature(self, key: str, expires: int) -> str:
        message = f"tts/{key}.wav:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def url(self, key: str, ttl: float, *, now: float | None = None) -> str:
        """``http://…/media/tts/<key>.wav?expires=…&sig=…``, valid for ``ttl`` seconds."""
        if not is_key(key):
            raise ValueError(f"not a speech key: {key!r}")
        expires = int((time.time() if now is None else now) + ttl)
        query = urllib.parse.urlencode({"expires": expires, "sig": self._signature(key, expires)})
        return f"{self.base_url}/media/tts/{key}.wav?{query}"

    def sound_uri(self, key: str, ttl: float) -> str:
        """The ARI ``media`` value: ``sound:`` + the URL (a bare ``http:`` scheme is refused)."""
        return "sound:" + self.url(key, ttl)

    def verify(self, key: str, expires: str, signature: str, *, now: float | None = None) -> int:
        """Answer the seconds left, or raise ``Forbidden`` for a bad or expired signature."""
        if not expires.isdigit() or len(expires) > 12:
            raise Forbidden("the media URL has no valid expiry")
        expected = self._signature(key, int(expires))
        if not hmac.compare_digest(expected, signature):
            raise Forbidden("the media URL's signature is wrong")
        left = int(expires) - int(time.time() if now is None else now)
        if left <= 0:
            raise Forbidden("the media URL has expired")
        return left


@dataclass
class SpeechMedia:
    """What the tts module needs: speech files and signed URLs to them."""

    cache: SpeechCache
    signer: MediaSigner
    ttl: float = DEFAULT_TTL
    served: int = field(default=0)  # files answered on the route, for metrics and tests
    fetches: deque[MediaFetch] = field(default_factory=lambda: deque(maxlen=FETCH_LOG))

    @classmethod
    def from_settings(cls, settings: Settings, *, base_url: str | None = None) -> SpeechMedia:
        """The service's speech: files under the data dir, URLs signed with the media secret.

        ``base_url`` overrides ``settings.media_url_base`` (e.g. when the API listens on port 0
        and the bound port is known only once it runs).
        """
        signer = MediaSigner(settings.media_secret, base_url or settings.media_url_base)
        return cls(SpeechCache(settings.data_dir), signer)

    async def for_node(self, data: Mapping[str, Any]) -> str:
        """The media URI of a validated tts node's ``data`` (text, voice, language).

        Kazoo's ``engine`` is not read: every engine name is served by eSpeak NG. Raises
        ``TtsError`` with the reason for the flow's outcome.
        """
        return await self.media_uri(
            str(data.get("text", "")), data.get("voice"), data.get("language")
        )

    async def media_uri(self, text: str, voice: str | None, language: str | None) -> str:
        """Synthesize (or reuse) the speech and answer the ``sound:http://…`` URI to play."""
        path = await self.cache.wav_for(text, voice, language)
        return self.signer.sound_uri(path.stem, self.ttl)

    def file_for(self, key: str, expires: str, signature: str) -> tuple[Path, int]:
        """Check the signature (403), then the key (404); answer the file and seconds left."""
        left = self.signer.verify(key, expires, signature)
        path = self.cache.path_for_key(key)
        if path is None:
            raise NotFound("no such speech file")
        return path, left


async def serve_speech(request: web.Request, media: SpeechMedia | None) -> web.StreamResponse:
    """``GET``/``HEAD /media/tts/{key}.wav?expires&sig`` — no token, the signature is the key."""
    if media is None:
        raise NotFound("speech is not configured on this server")
    key = request.match_info["key"]
    agent = request.headers.get("User-Agent", "")[:200]
    try:
        response = _answer(request, media, key)
    except MetaflowsError as exc:
        _note(media, MediaFetch(request.method, key, exc.status, agent))
        raise
    _note(media, MediaFetch(request.method, key, response.status, agent))
    return response


def _note(media: SpeechMedia, fetch: MediaFetch) -> None:
    media.fetches.append(fetch)
    logger.info(
        "tts: %s /media/tts/%s.wav → %d (%s)",
        fetch.method,
        fetch.key[:12],
        fetch.status,
        fetch.user_agent or "no User-Agent",
    )


def _answer(request: web.Request, media: SpeechMedia, key: str) -> web.Response:
    """The file (200), or 304 when the asker's copy is current; refusals raise."""
    path, left = media.file_for(key, request.query.get("expires", ""), request.query.get("sig", ""))
    etag = f'"{key}"'
    headers = {"ETag": etag, "Cache-Control": f"private, max-age={left}"}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    body = path.read_bytes() if path.stat().st_size <= MAX_WAV_BYTES else b""
    if not body:
        raise NotFound("no such speech file")
    media.served += 1
    return web.Response(body=body, content_type="audio/wav", headers=headers)


def add_routes(
    router: web.UrlDispatcher, media_of: Callable[[web.Request], SpeechMedia | None]
) -> None:
    """Register the speech route; ``media_of`` finds the service's ``SpeechMedia`` (or None)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve_speech(request, media_of(request))

    router.add_get("/media/tts/{key:[0-9a-f]{64}}.wav", handler)
