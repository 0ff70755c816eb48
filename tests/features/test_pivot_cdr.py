"""pivot's cdr_url: when the call ends its record is POSTed there, off the call's critical path
(Kazoo posts the call's CDR to it); a slow, failing or unreachable cdr_url never holds the
call's end and is logged with the call id."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web

from ari_metaflows.features.pivot import PivotFeature
from ari_metaflows.features.pivot.cdr import CdrSender
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.testing.eventually import eventually

from ..helpers.engine_service import ACCOUNT, FAST, Service, connected_call, the_call
from .test_pivot import VoiceServer

BEEP = {"module": "play", "data": {"id": "beep", "leg": "self"}}


@dataclass
class CdrServer:
    """Takes CDR posts; holds each answer until ``release`` is set, answers ``status``."""

    url: str = ""
    status: int = 200
    release: asyncio.Event = field(default_factory=asyncio.Event)
    posts: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/json"
        self.posts.append(await request.json())
        await self.release.wait()
        return web.json_response({"ok": True}, status=self.status)


@pytest.fixture
async def servers() -> AsyncIterator[tuple[VoiceServer, CdrServer]]:
    voice, cdr = VoiceServer(answer=BEEP), CdrServer()
    app = web.Application()
    app.router.add_route("*", "/voice", voice.handle)
    app.router.add_post("/cdr", cdr.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    voice.url, cdr.url = f"http://{host}:{port}/voice", f"http://{host}:{port}/cdr"
    try:
        yield voice, cdr
    finally:
        cdr.release.set()
        await runner.cleanup()


def sender(service: Service) -> CdrSender:
    feature = service.engine.features.by_name["pivot"]
    assert isinstance(feature, PivotFeature)
    return feature.cdr


async def pivot_with_cdr(service: Service, voice_url: str, cdr_url: str) -> None:
    await service.document(
        Owner.account(ACCOUNT),
        numbers={"7": {"module": "pivot", "data": {"voice_url": voice_url, "cdr_url": cdr_url}}},
    )


def iso(value: str) -> datetime:
    assert value.endswith("Z")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_the_calls_record_is_posted_when_it_ends_without_holding_the_end(
    service: Service, servers: tuple[VoiceServer, CdrServer]
) -> None:
    voice, cdr = servers
    await pivot_with_cdr(service, voice.url, cdr.url)
    alice, bob = await connected_call(service)
    call = the_call(service)
    legs = {"caller": call.legs["caller"].channel_id, "callee": call.legs["callee"].channel_id}
    await alice.press("*7", FAST)
    await eventually(
        lambda: service.metrics.codes.get(("pivot", "ok"), 0), lambda ok: ok == 1, timeout=10
    )
    assert cdr.posts == []  # nothing while the call goes on
    await bob.hangup()
    (body,) = await eventually(lambda: list(cdr.posts), lambda posts: len(posts) == 1)
    # The cdr_url has not answered yet: the call ended all the same.
    await service.wait_no_calls()
    await alice.wait_idle()
    assert sender(service).pending == 1
    assert body["call_id"] == call.id
    assert body["account_id"] == ACCOUNT
    assert body["legs"] == legs
    assert body["owner_ids"] == ["u-alice"]
    start, end = iso(body["start"]), iso(body["end"])
    assert 0 < (end - start).total_seconds() < 60
    assert body["duration_s"] == pytest.approx((end - start).total_seconds(), abs=0.002)
    assert body["hangup_by"] == "callee"
    assert set(body) == {
        "call_id",
        "account_id",
        "legs",
        "owner_ids",
        "start",
        "end",
        "duration_s",
        "hangup_by",
    }
    cdr.release.set()
    await eventually(lambda: sender(service).sent, lambda sent: sent == 1)
    assert sender(service).failed == 0


@pytest.mark.parametrize("fault", ["unreachable", "slow", "refused"])
async def test_a_failing_cdr_url_is_logged_and_the_call_ends_anyway(
    service: Service,
    servers: tuple[VoiceServer, CdrServer],
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    voice, cdr = servers
    url = cdr.url
    if fault == "unreachable":
        url = url.rsplit(":", 1)[0] + ":9/cdr"  # the discard port: nothing listens
    elif fault == "slow":
        sender(service).timeout = 0.3  # the server never answers in time
    else:
        cdr.status = 500
        cdr.release.set()
    await pivot_with_cdr(service, voice.url, url)
    alice, bob = await connected_call(service)
    call_id = the_call(service).id
    await alice.press("*7", FAST)
    await eventually(
        lambda: service.metrics.codes.get(("pivot", "ok"), 0), lambda ok: ok == 1, timeout=10
    )
    with caplog.at_level(logging.WARNING):
        await alice.hangup()
        await service.wait_no_calls()
        await bob.wait_idle()
        await eventually(lambda: sender(service).failed, lambda failed: failed == 1)
    assert sender(service).sent == 0
    reason = {"unreachable": "", "slow": "no answer within 0.3 s", "refused": "answered 500"}
    assert f"call {call_id}: CDR post to {url} failed: {reason[fault]}" in caplog.text


async def test_pending_posts_are_cancelled_at_shutdown(
    servers: tuple[VoiceServer, CdrServer], caplog: pytest.LogCaptureFixture
) -> None:
    _voice, cdr = servers
    posts = CdrSender()
    posts.send("c1", cdr.url, {"call_id": "c1"})
    await eventually(lambda: list(cdr.posts), lambda got: len(got) == 1)
    with caplog.at_level(logging.WARNING):
        await posts.close(grace=0.1)
    assert posts.pending == 0
    assert posts.failed == 1
    assert "call c1: CDR post to" in caplog.text
    posts.send("c2", cdr.url, {"call_id": "c2"})  # after close: refused, not started
    assert posts.pending == 0
    assert posts.failed == 2
