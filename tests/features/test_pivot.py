"""pivot: the next node comes from an HTTP server on loopback (SPEC §6, issue 16 item 7)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from ari_metaflows.errors import ValidationFailed
from ari_metaflows.features.pivot import MAX_DEPTH, PivotFeature
from ari_metaflows.metaflows.documents import validate_document
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.testing.eventually import eventually

from ..helpers.engine_service import ACCOUNT, FAST, Service, connected_call, the_call
from ..helpers.hearing import heard_on, wait_heard

BEEP_NODE = {"module": "play", "data": {"id": "beep", "leg": "self"}}


@dataclass
class VoiceServer:
    """A voice_url server: answers what the test sets, remembers each request's fields."""

    url: str = ""
    answer: Any = field(default_factory=lambda: BEEP_NODE)
    content_type: str = "application/json"
    delay: float = 0.0
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        fields: dict[str, list[str]] = {}
        source = await request.post() if request.method == "POST" else request.query
        for name, value in source.items():
            fields.setdefault(name, []).append(str(value))
        self.requests.append((request.method, fields))
        if self.delay:
            await asyncio.sleep(self.delay)
        body = self.answer if isinstance(self.answer, str) else web.json_response(self.answer).text
        return web.Response(text=body, content_type=self.content_type)


@pytest.fixture
async def voice() -> AsyncIterator[VoiceServer]:
    server = VoiceServer()
    app = web.Application()
    app.router.add_route("*", "/voice", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.url = f"http://{host}:{port}/voice"
    try:
        yield server
    finally:
        await runner.cleanup()


async def pivot_doc(service: Service, url: str, **data: Any) -> None:
    await service.document(
        Owner.account(ACCOUNT),
        numbers={
            "7": {
                "module": "pivot",
                "data": {"voice_url": url, **data},
                "children": {"_": {"module": "play", "data": {"id": "never", "leg": "self"}}},
            }
        },
        patterns={"6(\\d+)": {"module": "pivot", "data": {"voice_url": url, **data}}},
    )


async def outcome(service: Service, result: str) -> None:
    await eventually(
        lambda: service.metrics.codes.get(("pivot", result), 0),
        lambda count: count >= 1,
        what=f"a pivot flow ending {result}",
    )


@pytest.mark.parametrize("method", ["get", "post"])
async def test_the_answered_node_runs_next_with_the_calls_data(
    service: Service, voice: VoiceServer, method: str
) -> None:
    await pivot_doc(service, voice.url, method=method)
    alice, bob = await connected_call(service)
    call = the_call(service)
    caller, callee = call.legs["caller"].channel_id, call.legs["callee"].channel_id
    await alice.press("*642", FAST)  # the pattern: captures 42
    (beep,) = await wait_heard(service, alice, caller, None, 1)  # the answered node ran
    assert beep.media == "sound:beep"
    await outcome(service, "ok")
    verb, fields = voice.requests[0]
    assert verb == method.upper()
    assert fields["Call-ID"] == [call.id]
    assert fields["Account-ID"] == [ACCOUNT]
    assert fields["User-ID"] == ["u-alice"]
    assert fields["Digits"] == ["642"]
    assert fields["Capture"] == ["42"]
    assert fields["Channel-ID"] == [caller]
    assert fields["Leg-callee"] == [callee]
    assert heard_on(service, bob, callee, call.bridge_id) == []


async def test_the_pivot_nodes_own_children_do_not_run(
    service: Service, voice: VoiceServer
) -> None:
    await pivot_doc(service, voice.url)
    alice, _bob = await connected_call(service)
    call = the_call(service)
    caller = call.legs["caller"].channel_id
    await alice.press("*7", FAST)
    await outcome(service, "ok")  # the flow is over: the answered beep played to its end
    assert [m.media for m in heard_on(service, alice, caller, call.bridge_id)] == ["sound:beep"]
    assert service.metrics.codes.get(("play", "failed"), 0) == 0  # "never" was not tried


async def test_chained_pivots_are_bounded(
    service: Service, voice: VoiceServer, caplog: pytest.LogCaptureFixture
) -> None:
    voice.answer = {"module": "pivot", "data": {"voice_url": "placeholder"}}
    voice.answer["data"]["voice_url"] = voice.url  # answers itself: an endless chain
    await pivot_doc(service, voice.url)
    alice, _bob = await connected_call(service)
    with caplog.at_level(logging.WARNING):
        await alice.press("*7", FAST)
        await outcome(service, "failed")
    assert len(voice.requests) == MAX_DEPTH
    assert f"more than {MAX_DEPTH} pivots in one flow" in caplog.text


@pytest.mark.parametrize(
    ("answer", "content_type", "reason"),
    [
        ("<Response><Say>hi</Say></Response>", "text/xml", "answered text/xml, not JSON"),
        ("{not json", "application/json", "is not JSON"),
        ({"module": "no_such_module"}, "application/json", "not a valid metaflow node"),
        ({"module": "play", "data": {"leg": "sideways"}}, "application/json", "not a valid"),
    ],
)
async def test_a_bad_answer_fails_the_flow_clearly(
    service: Service,
    voice: VoiceServer,
    caplog: pytest.LogCaptureFixture,
    answer: Any,
    content_type: str,
    reason: str,
) -> None:
    voice.answer, voice.content_type = answer, content_type
    await pivot_doc(service, voice.url)
    alice, bob = await connected_call(service)
    with caplog.at_level(logging.WARNING):
        await alice.press("*7", FAST)
        await outcome(service, "failed")
    assert "module pivot failed: voice_url" in caplog.text
    assert reason in caplog.text
    assert await alice.in_call()
    assert await bob.in_call()


async def test_an_unreachable_voice_url_fails_the_flow(
    service: Service, voice: VoiceServer, caplog: pytest.LogCaptureFixture
) -> None:
    closed = voice.url.replace("/voice", "").rsplit(":", 1)[0] + ":9/voice"  # discard port
    await pivot_doc(service, closed)
    alice, _bob = await connected_call(service)
    with caplog.at_level(logging.WARNING):
        await alice.press("*7", FAST)
        await outcome(service, "failed")
    assert "voice_url is unreachable" in caplog.text


async def test_a_slow_voice_url_times_out(
    service: Service, voice: VoiceServer, caplog: pytest.LogCaptureFixture
) -> None:
    feature = service.engine.features.by_name["pivot"]
    assert isinstance(feature, PivotFeature)
    feature.timeout = 0.5
    voice.delay = 3.0
    await pivot_doc(service, voice.url)
    alice, _bob = await connected_call(service)
    with caplog.at_level(logging.WARNING):
        await alice.press("*7", FAST)
        await outcome(service, "failed")
    assert "voice_url gave no answer within 0.5 s" in caplog.text
    assert await alice.in_call()


async def test_an_answered_node_that_fails_fails_the_pivot(
    service: Service, voice: VoiceServer, caplog: pytest.LogCaptureFixture
) -> None:
    voice.answer = {"module": "play", "data": {"id": "http://127.0.0.1:9/gone.wav"}}
    await pivot_doc(service, voice.url)
    alice, _bob = await connected_call(service)
    with caplog.at_level(logging.WARNING):
        await alice.press("*7", FAST)
        await outcome(service, "failed")
    assert "the answered play ended failed" in caplog.text


def test_twiml_and_missing_voice_url_are_refused_at_save() -> None:
    with pytest.raises(ValidationFailed) as failed:
        validate_document(
            {
                "numbers": {
                    "1": {
                        "module": "pivot",
                        "data": {"voice_url": "http://x/", "req_format": "twiml"},
                    }
                }
            }
        )
    assert any(path.endswith("req_format") for path in failed.value.errors)
    with pytest.raises(ValidationFailed) as failed:
        validate_document({"numbers": {"1": {"module": "pivot", "data": {}}}})
    assert any(path.endswith("voice_url") for path in failed.value.errors)
    stored = validate_document(
        {"numbers": {"1": {"module": "pivot", "data": {"voice_url": "http://x/"}}}}
    )
    assert stored["numbers"]["1"]["data"]["method"] == "get"
    assert stored["numbers"]["1"]["data"]["req_format"] == "kazoo"
