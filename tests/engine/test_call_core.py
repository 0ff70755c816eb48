"""The call core (issue 14): flows ask the call's own task to change its state, a module that
raises something unexpected is an "error" (not "failed"), and a call's flows are cancelled and
awaited when the call ends."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest

from ari_metaflows.ari.gateway import AriGateway
from ari_metaflows.audit import EventStore
from ari_metaflows.audit.store import EventFilter
from ari_metaflows.calls.feature import ModuleContext, Playbacks, run_flow
from ari_metaflows.db.database import Database
from ari_metaflows.errors import ModuleFailed, RecordingRefused, SlotUnavailable
from ari_metaflows.metaflows.documents import Node
from ari_metaflows.metaflows.store import Owner

from ..helpers.engine_service import ACCOUNT, FAST, Service, connected_call, the_call, wait_until


def _context() -> ModuleContext:
    return ModuleContext(
        call_id="c1",
        gateway=cast(AriGateway, object()),
        presser="caller",
        channels={"caller": "ch-a", "callee": "ch-b"},
        bridge_id="br-1",
        data={},
        playbacks=Playbacks(),
    )


def test_module_failures_are_one_branch_of_the_error_tree() -> None:
    assert issubclass(RecordingRefused, ModuleFailed)
    assert issubclass(SlotUnavailable, ModuleFailed)


async def test_an_expected_failure_is_failed_and_a_bug_is_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def refuses(ctx: ModuleContext) -> str | None:
        raise ModuleFailed("nothing to do")

    async def crashes(ctx: ModuleContext) -> str | None:
        raise KeyError("a bug")

    runners = {"refuses": refuses, "crashes": crashes}
    with caplog.at_level(logging.WARNING):
        failed = await run_flow(Node("refuses", {}), _context(), runners)
        crashed = await run_flow(Node("crashes", {}), _context(), runners)
    assert failed == [("refuses", "failed")]
    assert crashed == [("crashes", "error")]
    by_message = {r.getMessage(): r for r in caplog.records}
    assert by_message["call c1: module refuses failed: nothing to do"].exc_info is None
    crash = by_message["call c1: module crashes raised unexpectedly"]
    assert crash.exc_info is not None  # the traceback
    assert crash.exc_info[0] is KeyError


async def _audited(db: Database, count: int) -> list[Any]:
    store = EventStore(db)
    async with asyncio.timeout(5):
        while True:
            events = (await store.page(ACCOUNT, EventFilter())).events
            if len(events) >= count:
                return events
            await asyncio.sleep(0.02)


async def test_a_module_raising_unexpectedly_is_audited_as_error(
    service: Service, db: Database
) -> None:
    async def crashes(ctx: ModuleContext) -> str | None:
        raise RuntimeError("a bug in a module")

    service.engine.features.runners["play"] = crashes
    await service.document(
        Owner.account(ACCOUNT), numbers={"9": {"module": "play", "data": {"id": "beep"}}}
    )
    alice, _ = await connected_call(service)
    await alice.press("*9", FAST)
    (event,) = await _audited(db, 1)
    assert (event.module, event.outcome) == ("play", "error")
    assert event.steps == [("play", "error")]
    assert service.metrics.codes[("play", "error")] == 1
    assert the_call(service).phase == "connected"  # the call goes on


async def test_a_flow_changes_the_call_only_through_its_task(service: Service) -> None:
    seen: dict[str, Any] = {}

    async def asks(ctx: ModuleContext) -> str | None:
        call = ctx.require_call()
        seen["flow_task"] = asyncio.current_task()
        seen["ran_in"] = await call.ask(asyncio.current_task)
        seen["state"] = await call.ask(lambda: call.feature_state.setdefault("probe", "set"))
        return None

    service.engine.features.runners["play"] = asks
    await service.document(
        Owner.account(ACCOUNT), numbers={"9": {"module": "play", "data": {"id": "beep"}}}
    )
    alice, _ = await connected_call(service)
    call = the_call(service)
    await alice.press("*9", FAST)
    await wait_until(lambda: "state" in seen)
    assert seen["ran_in"] is call.task
    assert seen["ran_in"] is not seen["flow_task"]
    assert call.feature_state["probe"] == "set"


async def test_a_call_awaits_its_flows_when_it_ends(service: Service, db: Database) -> None:
    started = asyncio.Event()
    cleaned_up: list[bool] = []

    async def lingers(ctx: ModuleContext) -> str | None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.05)  # cleanup that takes a while
            cleaned_up.append(True)
        return None

    service.engine.features.runners["play"] = lingers
    await service.document(
        Owner.account(ACCOUNT), numbers={"9": {"module": "play", "data": {"id": "beep"}}}
    )
    alice, bob = await connected_call(service)
    call = the_call(service)
    await alice.press("*9", FAST)
    async with asyncio.timeout(5):
        await started.wait()
    await bob.hangup()
    assert call.task is not None
    async with asyncio.timeout(5):
        await call.task
    assert cleaned_up == [True]  # the flow finished before the call's task did
    assert not call.children
    (event,) = await _audited(db, 1)
    assert event.outcome == "interrupted"
