"""Signed, expiring speech URLs served by the API listener to Asterisk (no token)."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from ari_metaflows.api.context import ApiContext
from ari_metaflows.api.server import create_app
from ari_metaflows.config import ConfigError, ListenAddress, Settings, load_settings
from ari_metaflows.errors import Forbidden
from ari_metaflows.features.tts.engine import SpeechCache, speech_key
from ari_metaflows.features.tts.media import MediaSigner, SpeechMedia

SECRET = b"0123456789abcdef-media-secret"


@pytest.fixture
async def media_server(
    api_context: ApiContext, tmp_path: Path
) -> AsyncIterator[tuple[SpeechMedia, aiohttp.ClientSession]]:
    server = TestServer(create_app(api_context), host="127.0.0.1")
    await server.start_server()
    media = SpeechMedia(SpeechCache(tmp_path), MediaSigner(SECRET, str(server.make_url(""))))
    api_context.speech = media
    try:
        async with aiohttp.ClientSession() as session:
            yield media, session
    finally:
        await server.close()


def with_query(url: str, **changes: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query.update(changes)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


async def test_a_signed_url_serves_the_wav_without_a_token(
    media_server: tuple[SpeechMedia, aiohttp.ClientSession],
) -> None:
    media, session = media_server
    uri = await media.media_uri("Goodbye.", "female", "en-US")
    assert uri.startswith("sound:http://127.0.0.1:")
    url = uri.removeprefix("sound:")
    assert urllib.parse.urlsplit(url).path.endswith(".wav")  # Asterisk reads the format here

    async with session.get(url) as response:
        assert response.status == 200
        assert response.content_type == "audio/wav"
        body = await response.read()
        etag = response.headers["ETag"]
        max_age = int(response.headers["Cache-Control"].rpartition("max-age=")[2])
    key = speech_key("Goodbye.", "female", "en-us")
    assert body == (media.cache.directory / f"{key}.wav").read_bytes()
    assert body[:4] == b"RIFF"
    assert body[8:12] == b"WAVE"
    assert 0 < max_age <= media.ttl

    # Asterisk's media cache revalidates a stale entry with HEAD + If-None-Match.
    async with session.head(url, headers={"If-None-Match": etag}) as response:
        assert response.status == 304
    async with session.head(url) as response:
        assert response.status == 200
    assert media.served == 2


async def test_a_tampered_or_expired_url_is_forbidden(
    media_server: tuple[SpeechMedia, aiohttp.ClientSession],
) -> None:
    media, session = media_server
    path = await media.cache.wav_for("Goodbye.", "female", "en-US")
    other = await media.cache.wav_for("Hello.", "female", "en-US")
    url = media.signer.url(path.stem, 60)
    signature = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["sig"]

    forged = [
        with_query(url, sig="0" * 64),
        with_query(url, sig=signature[:-1] + ("0" if signature[-1] != "0" else "1")),
        with_query(url, expires=str(int(time.time()) + 10_000)),  # a longer life, same sig
        url.replace(path.stem, other.stem),  # another file, this file's signature
        url.partition("?")[0],  # no signature at all
        with_query(url, expires="soon"),
        media.signer.url(path.stem, 60, now=time.time() - 120),  # expired a minute ago
        MediaSigner(b"another-secret-of-16+", media.signer.base_url).url(path.stem, 60),
    ]
    for bad in forged:
        async with session.get(bad) as response:
            assert response.status == 403, bad
            assert response.content_type == "application/json"
    assert media.served == 0


async def test_an_unknown_key_is_not_found(
    media_server: tuple[SpeechMedia, aiohttp.ClientSession],
    api_context: ApiContext,
) -> None:
    media, session = media_server
    unknown = speech_key("never said", "female", "en-us")
    async with session.get(media.signer.url(unknown, 60)) as response:
        assert response.status == 404
    base = media.signer.base_url
    async with session.get(f"{base}/media/tts/not-a-key.wav?expires=1&sig=x") as response:
        assert response.status == 404

    api_context.speech = None  # a server without speech
    path = await media.cache.wav_for("Goodbye.", "female", "en-US")
    async with session.get(media.signer.url(path.stem, 60)) as response:
        assert response.status == 404


def test_the_signer_refuses_a_short_secret_and_non_keys() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        MediaSigner(b"short", "http://x")
    with pytest.raises(ValueError, match="not a speech key"):
        MediaSigner(SECRET, "http://x").url("../../etc/passwd", 60)


def _settings(**env: str) -> Settings:
    return load_settings(environ=env)


def test_media_settings() -> None:
    assert _settings().media_url_base == "http://127.0.0.1:8000"
    assert _settings(METAFLOWS_API_LISTEN="0.0.0.0:8123").media_url_base == "http://127.0.0.1:8123"
    given = _settings(METAFLOWS_MEDIA_BASE_URL="http://metaflows:8000/")
    assert given.media_url_base == "http://metaflows:8000"
    with pytest.raises(ConfigError, match="METAFLOWS_MEDIA_BASE_URL"):
        _settings(METAFLOWS_MEDIA_BASE_URL="ftp://x")
    with pytest.raises(ConfigError, match="METAFLOWS_MEDIA_SECRET"):
        _settings(METAFLOWS_MEDIA_SECRET="short")
    fixed = _settings(METAFLOWS_MEDIA_SECRET="a-secret-of-enough-length")
    assert fixed.media_secret == b"a-secret-of-enough-length"
    assert "secret" not in repr(fixed)
    # Unset: random, different for each process (each load).
    assert _settings().media_secret != _settings().media_secret
    assert len(_settings().media_secret) == 32
    ipv6 = Settings(api_listen=ListenAddress("::1", 9000))
    assert ipv6.media_url_base == "http://[::1]:9000"


async def test_the_service_speech_follows_the_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, media_secret=SECRET)
    media = SpeechMedia.from_settings(settings, base_url="http://asterisk-sees-us:8123")
    uri = await media.for_node({"text": "Hi.", "engine": "flite"})  # Kazoo's defaults
    key = speech_key("Hi.", "female", "en-us")
    assert uri.startswith(f"sound:http://asterisk-sees-us:8123/media/tts/{key}.wav?expires=")
    assert (tmp_path / "tts" / f"{key}.wav").is_file()
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(uri.removeprefix("sound:")).query))
    # Another process with the same secret accepts the URL; one with another secret does not.
    assert MediaSigner(SECRET, "http://x").verify(key, query["expires"], query["sig"]) > 0
    with pytest.raises(Forbidden, match="signature is wrong"):
        MediaSigner(b"another-secret-16+", "http://x").verify(key, query["expires"], query["sig"])
    assert SpeechMedia.from_settings(Settings()).signer.base_url == "http://127.0.0.1:8000"
