"""Actions on a call, routed to the instance that holds its Asterisk (LISTEN/NOTIFY).

Each instance listens on its own channel (``inbox_of(instance)``) on a dedicated connection
(``db.listener``). A request is ``{"kind": "request", "id", "reply_to", "asterisk", "action"}``
where ``action`` is a ``RoutedAction`` as JSON (run a metaflow node on a leg, send a parked call
on); the holder runs it as a local action would and answers ``{"kind": "reply", "id", "status",
"data"}`` (an error: also its ``error`` id) on ``reply_to``, and the requester raises the same
``MetaflowsError`` a local action would have. No answer within ``timeout`` →
``AsteriskUnavailable`` (503 "asterisk unavailable"): the caller never guesses. NOTIFY payloads
are limited to 8000 bytes by PostgreSQL; a larger metaflow is refused with 413.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..backoff import Backoff
from ..db.database import Database
from ..db.listener import listen_forever
from ..errors import (
    AsteriskUnavailable,
    MetaflowsError,
    PayloadTooLarge,
    ValidationFailed,
)
from ..metaflows.documents import Node

logger = logging.getLogger(__name__)

ROUTE_TIMEOUT = 2.0  # seconds an owner has to answer a routed action
LISTEN_RETRY = Backoff(initial=0.5, maximum=5.0)
MAX_PAYLOAD = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more


@dataclass(frozen=True, slots=True)
class RunNodeAction:
    """``POST/PUT …/channels/{id}``: run ``node`` on the leg, as if its owner pressed a code."""

    account: str
    channel: str
    node: Node


@dataclass(frozen=True, slots=True)
class SendParkedOnAction:
    """``POST …/parked_calls/{slot}``: the parked party goes on to ``extension@context``."""

    account: str
    slot: str
    context: str
    extension: str
    priority: int


RoutedAction = RunNodeAction | SendParkedOnAction

# Runs an action locally on ``asterisk``: → the 202 body, or raises the MetaflowsError a local
# action would.
LocalAction = Callable[[str, RoutedAction], Awaitable[dict[str, Any]]]


def inbox_of(instance: str) -> str:
    """The NOTIFY channel of an instance (an identifier whatever the instance id is)."""
    return "metaflows_" + hashlib.sha1(instance.encode()).hexdigest()[:24]


def node_json(node: Node) -> dict[str, Any]:
    return {
        "module": node.module,
        "data": dict(node.data),
        "children": {key: node_json(child) for key, child in node.children.items()},
    }


def action_json(action: RoutedAction) -> dict[str, Any]:
    if isinstance(action, RunNodeAction):
        return {
            "kind": "run_node",
            "account": action.account,
            "channel": action.channel,
            "node": node_json(action.node),
        }
    return {
        "kind": "send_parked_on",
        "account": action.account,
        "slot": action.slot,
        "context": action.context,
        "extension": action.extension,
        "priority": action.priority,
    }


def action_from_json(data: Mapping[str, Any]) -> RoutedAction:
    """The action of a request (KeyError, TypeError, ValueError: malformed)."""
    kind = data["kind"]
    if kind == "run_node":
        return RunNodeAction(
            str(data["account"]), str(data["channel"]), Node.from_json(data["node"])
        )
    if kind == "send_parked_on":
        return SendParkedOnAction(
            str(data["account"]),
            str(data["slot"]),
            str(data["context"]),
            str(data["extension"]),
            int(data["priority"]),
        )
    raise ValueError(f"unknown routed action {kind!r}")


def _subclasses(cls: type[MetaflowsError]) -> Iterator[type[MetaflowsError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def error_of(status: int, error_id: object, detail: object, data: object) -> MetaflowsError:
    """The error a local action raised, rebuilt from its reply (its status and error id pick
    the class of the one error tree); an answer not understood is 503."""
    details = dict(data) if isinstance(data, dict) else {}
    text = detail if isinstance(detail, str) else None
    for cls in _subclasses(MetaflowsError):
        if cls.status == status and cls.message == error_id:
            if cls is ValidationFailed:
                return ValidationFailed(details)
            return cls(text, data=details)
    return AsteriskUnavailable(text)


class ActionRouter:
    def __init__(
        self,
        db: Database,
        listen_url: str,
        instance: str,
        local: LocalAction,
        *,
        timeout: float = ROUTE_TIMEOUT,
        backoff: Backoff = LISTEN_RETRY,
    ) -> None:
        self.db = db
        self.listen_url = listen_url
        self.instance = instance
        self.inbox = inbox_of(instance)
        self.timeout = timeout
        self._local = local
        self._backoff = backoff
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        self.routed = 0  # requests sent to another instance
        self.served = 0  # requests of other instances run here

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen_forever(), name="action-router")

    async def stop(self) -> None:
        tasks = [t for t in (self._listener, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for future in self._waiting.values():
            future.cancel()

    # -- asking another instance -----------------------------------------------------------

    async def request(self, holder: str, asterisk: str, action: RoutedAction) -> dict[str, Any]:
        """Run ``action`` on ``holder`` (which holds ``asterisk``): its 202 body, or the error
        it raised; ``AsteriskUnavailable`` when it does not answer within ``timeout``."""
        request_id = uuid.uuid4().hex
        payload = json.dumps(
            {
                "kind": "request",
                "id": request_id,
                "reply_to": self.inbox,
                "asterisk": asterisk,
                "action": action_json(action),
            },
            separators=(",", ":"),
        )
        if len(payload.encode()) > MAX_PAYLOAD:
            raise PayloadTooLarge("the metaflow is too large to be routed to another instance")
        if not self.listening.is_set():
            raise AsteriskUnavailable("this instance cannot receive answers from others now")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        self.routed += 1
        try:
            async with asyncio.timeout(self.timeout):
                await self._notify(inbox_of(holder), payload)
                reply = await future
        except TimeoutError:
            logger.warning(
                "routed action %s: %s (asterisk %s) did not answer in %.1f s",
                type(action).__name__,
                holder,
                asterisk,
                self.timeout,
            )
            raise AsteriskUnavailable() from None
        finally:
            self._waiting.pop(request_id, None)
        status = int(reply.get("status", 503))
        data = reply.get("data")
        if status == 202 and isinstance(data, dict):
            return data
        raise error_of(status, reply.get("error"), reply.get("detail"), data)

    async def _notify(self, inbox: str, payload: str) -> None:
        async with self.db.connection() as conn:
            await conn.execute("SELECT pg_notify($1, $2)", inbox, payload)

    # -- answering -------------------------------------------------------------------------

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            message = json.loads(str(payload))
        except ValueError:
            logger.warning("action router: a message that is not JSON, ignored")
            return
        if not isinstance(message, dict):
            return
        if message.get("kind") == "reply":
            future = self._waiting.get(str(message.get("id")))
            if future is not None and not future.done():
                future.set_result(message)
        elif message.get("kind") == "request":
            task = asyncio.create_task(self._serve(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, message: Mapping[str, Any]) -> None:
        self.served += 1
        try:
            action = action_from_json(message["action"])
            asterisk = str(message["asterisk"])
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("action router: a malformed request: %r", exc)
            return
        reply: dict[str, Any] = {"kind": "reply", "id": message.get("id")}
        try:
            reply.update(status=202, data=await self._local(asterisk, action))
        except MetaflowsError as exc:
            reply.update(status=exc.status, error=exc.message, detail=exc.detail, data=exc.data)
        text = json.dumps(reply, default=str)
        if len(text.encode()) > MAX_PAYLOAD:  # a long error: its status and id still go
            reply.pop("data")
            if isinstance(reply.get("detail"), str):
                reply["detail"] = reply["detail"][:1000]
            text = json.dumps(reply, default=str)
        try:
            await self._notify(str(message.get("reply_to")), text)
        except MetaflowsError as exc:
            logger.warning("action router: cannot answer: %s", exc)

    async def _listen_forever(self) -> None:
        await listen_forever(
            self.listen_url,
            self.inbox,
            self._on_notify,
            backoff=self._backoff,
            listening=self.listening,
            what="action router",
        )
