"""Routed actions over a real PostgreSQL LISTEN/NOTIFY (issue 18): the holder's answer or the very
error a local action raised comes back; an owner that does not answer is 503 in bounded time;
nothing malformed reaches the holder's local action."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from ari_metaflows.backoff import Backoff
from ari_metaflows.cluster.routing import (
    MAX_PAYLOAD,
    ActionRouter,
    RoutedAction,
    RunNodeAction,
    SendParkedOnAction,
    action_from_json,
    action_json,
    error_of,
    inbox_of,
)
from ari_metaflows.db.database import Database
from ari_metaflows.errors import (
    AsteriskUnavailable,
    Conflict,
    InvalidRequest,
    MetaflowsError,
    NotFound,
    PayloadTooLarge,
    RevisionConflict,
    ValidationFailed,
)
from ari_metaflows.metaflows.documents import Node
from ari_metaflows.testing.eventually import eventually

from ..helpers.listen import drop_listen_connections

PLAY = Node("play", {"id": "beep"}, {"_": Node("hangup", {})})
UNPARK = SendParkedOnAction("acc1", "701", "internal", "1003", 1)


class Holder:
    """The holder's side: answers what its calls would (one error per slot number)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, RoutedAction]] = []

    async def local(self, asterisk: str, action: RoutedAction) -> dict[str, object]:
        self.seen.append((asterisk, action))
        if isinstance(action, RunNodeAction):
            if action.channel == "gone":
                raise NotFound(f"no live channel {action.channel} in this account")
            if action.channel == "busy":
                raise Conflict("a transfer runs")
            return {"call_id": "call-" + action.channel}
        if action.slot == "709":
            raise ValidationFailed({"data.extension": {"pattern": {"message": "no"}}})
        if action.slot == "710":
            raise InvalidRequest("x" * 20_000)  # too long for one NOTIFY
        return {"slot": action.slot}


@pytest.fixture
async def routers(db: Database, database_url: str) -> AsyncIterator[tuple[ActionRouter, Holder]]:
    holder = Holder()
    quick = Backoff(initial=0.05, maximum=0.1)
    asker = ActionRouter(db, database_url, "i2", holder.local, timeout=1.0, backoff=quick)
    serving = ActionRouter(db, database_url, "i1", holder.local, timeout=1.0, backoff=quick)
    for router in (asker, serving):
        await router.start()
    try:
        await asyncio.wait_for(asker.listening.wait(), 10)
        await asyncio.wait_for(serving.listening.wait(), 10)
        yield asker, holder
    finally:
        for router in (asker, serving):
            await router.stop()


def test_actions_go_through_json_unchanged() -> None:
    for action in (RunNodeAction("acc1", "c1", PLAY), UNPARK):
        assert action_from_json(action_json(action)) == action
    for bad in ({"kind": "reboot"}, {"kind": "run_node"}, {"kind": "send_parked_on", "slot": 1}):
        with pytest.raises((KeyError, ValueError)):
            action_from_json(bad)


def test_errors_come_back_as_their_own_class() -> None:
    conflict = error_of(409, "conflicting revision", "stale", {"message": "stale"})
    assert type(conflict) is RevisionConflict
    assert conflict.detail == "stale"
    assert type(error_of(409, "conflict", None, None)) is Conflict
    assert type(error_of(418, "teapot", "?", None)) is AsteriskUnavailable
    assert type(error_of(404, "not a known id", None, None)) is AsteriskUnavailable


async def test_the_holder_answers_as_a_local_action_would(
    routers: tuple[ActionRouter, Holder],
) -> None:
    asker, holder = routers
    answer = await asker.request("i1", "ast1", RunNodeAction("acc1", "c1", PLAY))
    assert answer == {"call_id": "call-c1"}
    assert holder.seen[-1] == ("ast1", RunNodeAction("acc1", "c1", PLAY))
    assert await asker.request("i1", "ast1", UNPARK) == {"slot": "701"}

    expected: list[tuple[RoutedAction, type[MetaflowsError], int]] = [
        (RunNodeAction("acc1", "gone", PLAY), NotFound, 404),
        (RunNodeAction("acc1", "busy", PLAY), Conflict, 409),
        (SendParkedOnAction("acc1", "709", "c", "e", 1), ValidationFailed, 400),
        (SendParkedOnAction("acc1", "710", "c", "e", 1), InvalidRequest, 400),
    ]
    for action, error, status in expected:
        with pytest.raises(error) as raised:
            await asker.request("i1", "ast1", action)
        assert raised.value.status == status
    with pytest.raises(ValidationFailed) as invalid:
        await asker.request("i1", "ast1", SendParkedOnAction("acc1", "709", "c", "e", 1))
    assert "data.extension" in invalid.value.errors


async def test_an_owner_that_does_not_answer_is_503_in_bounded_time(
    routers: tuple[ActionRouter, Holder],
) -> None:
    asker, holder = routers
    started = time.monotonic()
    with pytest.raises(AsteriskUnavailable):
        await asker.request("nobody-listens", "ast1", UNPARK)
    assert time.monotonic() - started < 3.0
    assert holder.seen == []


async def test_too_large_a_metaflow_is_413_and_malformed_requests_are_ignored(
    routers: tuple[ActionRouter, Holder], db: Database
) -> None:
    asker, holder = routers
    huge = Node("play", {"id": "x" * MAX_PAYLOAD})
    with pytest.raises(PayloadTooLarge):
        await asker.request("i1", "ast1", RunNodeAction("acc1", "c1", huge))
    async with db.connection() as conn:
        for payload in ("not json", "[1]", '{"kind": "request", "action": {"kind": "reboot"}}'):
            await conn.execute("SELECT pg_notify($1, $2)", inbox_of("i1"), payload)
    # The holder still serves the next request, and ran none of the malformed ones.
    assert await asker.request("i1", "ast1", UNPARK) == {"slot": "701"}
    assert [action for _, action in holder.seen] == [UNPARK]


async def test_an_instance_not_listening_refuses_at_once(db: Database, database_url: str) -> None:
    holder = Holder()
    # Never started: it could not hear the answer, so it does not ask.
    router = ActionRouter(db, database_url, "i3", holder.local, backoff=Backoff(0.1, 0.1))
    with pytest.raises(AsteriskUnavailable, match="cannot receive answers"):
        await router.request("i1", "ast1", UNPARK)


async def test_routing_works_again_after_the_listening_connections_drop(
    routers: tuple[ActionRouter, Holder], database_url: str
) -> None:
    asker, _ = routers
    await drop_listen_connections(database_url)
    # Both sides listen again (the one LISTEN loop, db/listener.py): the request goes through.
    answer = await eventually(
        lambda: asker.request("i1", "ast1", UNPARK),
        timeout=10,
        retry_on=(AsteriskUnavailable,),
        what="a routed action after the LISTEN connections dropped",
    )
    assert answer == {"slot": "701"}
