"""Documents that Kazoo's schemas allow, run: modules with a schema but no runner yet end the
flow as "unavailable"; Kazoo's wider values reach modules in a form they can use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar, cast

from ari_metaflows.calls.feature import CallHandle, run_flow
from ari_metaflows.features import build_registry
from ari_metaflows.features.recording import RecordingFeature
from ari_metaflows.features.transfer import attended_timeout
from ari_metaflows.metaflows.documents import validate_document

from .test_executor import REGISTRY, RecordingGateway, context, node

T = TypeVar("T")

NOT_YET_RUNNING = ["tts", "intercept", "move", "hold_control", "sound_touch", "pivot"]


async def test_modules_with_a_schema_but_no_runner_end_the_flow_unavailable() -> None:
    assert set(NOT_YET_RUNNING) <= set(build_registry().modules)
    for module in NOT_YET_RUNNING:
        data = {"voice_url": "http://example.com/x"} if module == "pivot" else {}
        # Stored fine ...
        stored = validate_document({"numbers": {"1": {"module": module, "data": data}}})
        assert stored["numbers"]["1"]["module"] == module
        if module in REGISTRY:  # a runner has landed meanwhile: nothing to check here
            continue
        # ... and at run time the flow ends there, children not run, nothing sent to Asterisk.
        gateway = RecordingGateway()
        tree = node({"module": module, "data": data, "children": {"_": {"module": "hangup"}}})
        steps = await run_flow(tree, context(gateway), REGISTRY)
        assert steps == [(module, "unavailable")]
        assert gateway.requests == []


async def test_say_types_asterisk_cannot_say_fail_with_the_reason() -> None:
    gateway = RecordingGateway()
    tree = node({"module": "say", "data": {"text": "2026-11-30", "type": "current_date"}})
    assert await run_flow(tree, context(gateway), REGISTRY) == [("say", "failed")]
    tree = node({"module": "say", "data": {"text": "42", "type": "telephone_extension"}})
    assert await run_flow(tree, context(gateway), REGISTRY) == [("say", "ok")]
    tree = node({"module": "say", "data": {"text": "0042", "type": "account_number"}})
    assert await run_flow(tree, context(gateway), REGISTRY) == [("say", "ok")]
    assert gateway.requests == [("play_on_bridge", "digits:42"), ("play_on_bridge", "digits:0042")]


async def test_play_and_say_without_their_media_fail_at_run_time() -> None:
    gateway = RecordingGateway()
    for raw in ({"module": "play"}, {"module": "say"}, {"module": "say", "data": {"text": ""}}):
        assert (await run_flow(node(raw), context(gateway), REGISTRY))[0][1] == "failed"
    assert gateway.requests == []


def test_transfer_timeout_from_kazoos_any_integer() -> None:
    assert attended_timeout(None) == 20.0
    assert attended_timeout(0) == 20.0
    assert attended_timeout(-5) == 20.0
    assert attended_timeout(True) == 20.0
    assert attended_timeout(1) == 1.0
    assert attended_timeout(30000) == 30.0
    assert attended_timeout(10**9) == 600.0


class OptionsKept(RecordingFeature):
    """The recording feature, stopped short of Asterisk: keeps what record_call asked for."""

    def __init__(self) -> None:
        super().__init__(None)
        self.options: list[dict[str, Any]] = []

    async def record(
        self, call: CallHandle, presser: str, action: str, options: dict[str, Any]
    ) -> str:
        self.options.append(options)
        return "recording"


class AskingCall:
    """Stands in for the call's task: runs what a flow asks of it at once."""

    async def ask_async(self, action: Callable[[], Awaitable[T]]) -> T:
        return await action()


async def test_record_time_limit_that_is_not_positive_means_the_cap() -> None:
    feature = OptionsKept()
    runner = feature.modules["record_call"].runner
    assert runner is not None
    runners = {"record_call": runner}
    for limit in (0, -5, 60):
        raw = {"module": "record_call", "data": {"action": "start", "time_limit": limit}}
        ctx = replace(context(RecordingGateway()), call=cast(CallHandle, AskingCall()))
        assert await run_flow(node(raw), ctx, runners) == [("record_call", "ok")]
    assert [o.get("time_limit") for o in feature.options] == [None, None, 60]
