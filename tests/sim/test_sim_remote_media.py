"""The simulator plays ``sound:http://…`` like Asterisk 22 with res_http_media_cache."""

from __future__ import annotations

import io
import socket
import wave
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ari_metaflows.api.context import ApiContext
from ari_metaflows.api.server import create_app
from ari_metaflows.features.tts.engine import SpeechCache, wav_seconds
from ari_metaflows.features.tts.media import MediaSigner, SpeechMedia
from ari_metaflows.sim import SimPhone, SimulatedAsteriskServer, StasisApp

from ..helpers.raw_ari import RawAri


def wav_bytes(seconds: float, rate: int = 8000, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\x10\x00" * int(seconds * rate) * channels)
    return out.getvalue()


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedAsteriskServer]:
    async with SimulatedAsteriskServer() as server:
        server.core.dialplan.add("default", "100", StasisApp("metaflows", ()))
        yield server


@pytest.fixture
async def ari(sim: SimulatedAsteriskServer) -> AsyncIterator[RawAri]:
    async with RawAri(sim.url, sim.username, sim.password, "metaflows") as client:
        yield client


@pytest.fixture
async def files() -> AsyncIterator[tuple[str, list[str]]]:
    """A media server: /short.wav (0.4 s), a stereo WAV, a 404, an HTML page, a slow answer."""
    requests: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        requests.append(f"{request.method} {request.path_qs}")
        name = request.match_info["name"]
        if name == "short.wav":
            return web.Response(body=wav_bytes(0.4), content_type="audio/wav")
        if name == "noext":  # format from the Content-Type
            return web.Response(body=wav_bytes(0.3), content_type="audio/x-wav")
        if name == "typed-by-path.wav":  # format from the path's extension
            return web.Response(body=wav_bytes(0.3), content_type="application/octet-stream")
        if name == "stereo.wav":
            return web.Response(body=wav_bytes(0.3, channels=2), content_type="audio/wav")
        if name == "page":
            return web.Response(text="<html></html>", content_type="text/html")
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/{name}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), requests
    finally:
        await server.close()


async def answered_call(sim: SimulatedAsteriskServer, ari: RawAri) -> tuple[str, SimPhone]:
    alice = sim.core.add_phone("alice")
    channel = sim.core.place_call(alice, "100")
    await ari.wait_event("StasisStart")
    await ari.request("POST", f"/channels/{channel.id}/answer")
    return channel.id, SimPhone(sim.core, alice)


def _at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("+0000", "+00:00")).timestamp()


async def play(ari: RawAri, channel_id: str, media: str) -> tuple[dict[str, Any], dict[str, Any]]:
    status, playback = await ari.request("POST", f"/channels/{channel_id}/play", media=media)
    assert status == 201
    started = await ari.wait_event(
        "PlaybackStarted", lambda e: e["playback"]["id"] == playback["id"]
    )
    finished = await ari.wait_event(
        "PlaybackFinished", lambda e: e["playback"]["id"] == playback["id"]
    )
    return started, finished


async def test_a_remote_wav_is_fetched_and_plays_for_its_length(
    sim: SimulatedAsteriskServer, ari: RawAri, files: tuple[str, list[str]]
) -> None:
    base, requests = files
    channel_id, alice = await answered_call(sim, ari)
    started, finished = await play(ari, channel_id, f"sound:{base}/short.wav")
    assert finished["playback"]["state"] == "done"
    assert 0.35 <= _at(finished) - _at(started) < 1.5
    assert requests == ["GET /short.wav"]
    assert alice.hears().kind != "playback"
    # Without Cache-Control the download is stale at once and has no ETag: fetched again.
    await play(ari, channel_id, f"sound:{base}/short.wav")
    assert requests == ["GET /short.wav", "GET /short.wav"]


async def test_the_format_comes_from_the_content_type_or_the_extension(
    sim: SimulatedAsteriskServer, ari: RawAri, files: tuple[str, list[str]]
) -> None:
    base, _ = files
    channel_id, _ = await answered_call(sim, ari)
    for name in ("noext", "typed-by-path.wav"):
        _, finished = await play(ari, channel_id, f"sound:{base}/{name}")
        assert finished["playback"]["state"] == "done", name


@pytest.mark.parametrize("name", ["missing.wav", "page", "stereo.wav"])
async def test_a_failed_download_fails_the_playback(
    sim: SimulatedAsteriskServer, ari: RawAri, files: tuple[str, list[str]], name: str
) -> None:
    base, requests = files
    channel_id, _ = await answered_call(sim, ari)
    started, finished = await play(ari, channel_id, f"sound:{base}/{name}")
    assert started["playback"]["state"] == "playing"
    assert finished["playback"]["state"] == "failed"
    assert requests == [f"GET /{name}"]


async def test_an_unreachable_server_fails_the_playback_and_a_list_goes_on(
    sim: SimulatedAsteriskServer, ari: RawAri, files: tuple[str, list[str]]
) -> None:
    base, _ = files
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel_id, _ = await answered_call(sim, ari)
    _, finished = await play(ari, channel_id, f"sound:http://127.0.0.1:{port}/x.wav")
    assert finished["playback"]["state"] == "failed"

    _, finished = await play(
        ari, channel_id, f"sound:http://127.0.0.1:{port}/x.wav,sound:{base}/short.wav"
    )
    assert finished["playback"]["state"] == "done"
    assert "PlaybackContinuing" in [event["type"] for event in ari.events]


async def test_speech_from_the_service_is_heard_whole(
    sim: SimulatedAsteriskServer, ari: RawAri, api_context: ApiContext, tmp_path: Path
) -> None:
    """The real route and the real synthesizer: the playback lasts as long as the speech."""
    server = TestServer(create_app(api_context), host="127.0.0.1")
    await server.start_server()
    try:
        media = SpeechMedia(
            SpeechCache(tmp_path), MediaSigner(b"sixteen-bytes-secret", str(server.make_url("")))
        )
        api_context.speech = media
        uri = await media.media_uri("Goodbye, and thank you for calling.", "female", "en-US")
        length = wav_seconds(
            media.cache.directory / (uri.rpartition("/")[2].partition(".")[0] + ".wav")
        )
        channel_id, alice = await answered_call(sim, ari)
        status, _ = await ari.request("POST", f"/channels/{channel_id}/play", media=uri)
        assert status == 201
        started = await ari.wait_event("PlaybackStarted")
        await alice.wait_hears("playback", uri)
        finished = await ari.wait_event("PlaybackFinished", timeout=length + 5)
        assert finished["playback"]["state"] == "done"
        assert length - 0.1 <= _at(finished) - _at(started) < length + 1.0
        assert media.served == 1
        assert sim.core.remote_media.fetched == [("GET", uri.removeprefix("sound:"))]

        # Replayed while fresh (max-age): no new download.
        await play(ari, channel_id, uri)
        assert media.served == 1
    finally:
        await server.close()


async def test_a_stale_download_with_an_etag_is_revalidated(
    sim: SimulatedAsteriskServer, ari: RawAri, api_context: ApiContext, tmp_path: Path
) -> None:
    server = TestServer(create_app(api_context), host="127.0.0.1")
    await server.start_server()
    try:
        media = SpeechMedia(
            SpeechCache(tmp_path), MediaSigner(b"sixteen-bytes-secret", str(server.make_url("")))
        )
        api_context.speech = media
        uri = await media.media_uri("Hi.", "male", "en-US")
        channel_id, _ = await answered_call(sim, ari)
        await play(ari, channel_id, uri)
        url = uri.removeprefix("sound:")
        sim.core.remote_media._entries[url].expires = 0  # as if max-age had passed
        _, finished = await play(ari, channel_id, uri)
        assert finished["playback"]["state"] == "done"
        assert sim.core.remote_media.fetched == [("GET", url), ("HEAD", url)]
        assert media.served == 1  # the HEAD was answered 304
    finally:
        await server.close()
