"""Actions on a call, routed to the instance that holds its Asterisk (LISTEN/NOTIFY).

Each instance listens on its own channel (``inbox_of(instance)``) on a dedicated connection.
A request is ``{"kind": "request", "id", "reply_to", "asterisk", "account", "channel",
"node"}``; the holder runs it as a local action would and answers ``{"kind": "reply", "id",
"status", "data"}`` on ``reply_to``. No answer within ``timeout`` → ``AsteriskUnavailable``
(503 "asterisk unavailable"): the caller never guesses. NOTIFY payloads are limited to
8000 bytes by PostgreSQL; a larger metaflow is refused with 413.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg

from ..backoff import Backoff
from ..db.database import CONNECTION_ERRORS, Database
from ..errors import AsteriskUnavailable, MetaflowsError, NotFound, PayloadTooLarge
from ..metaflows.documents import Node

logger = logging.getLogger(__name__)

ROUTE_TIMEOUT = 2.0  # seconds an owner has to answer a routed action
LISTEN_RETRY = Backoff(initial=0.5, maximum=5.0)
MAX_PAYLOAD = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more

# Runs an action locally: (asterisk, account, channel, node) → the 202 body, or raises the
# MetaflowsError a local action would.
LocalAction = Callable[[str, str, str, Node], Awaitable[dict[str, Any]]]

_ERRORS: dict[int, type[MetaflowsError]] = {404: NotFound, 503: AsteriskUnavailable}


def inbox_of(instance: str) -> str:
    """The NOTIFY channel of an instance (an identifier whatever the instance id is)."""
    return "metaflows_" + hashlib.sha1(instance.encode()).hexdigest()[:24]


def node_json(node: Node) -> dict[str, Any]:
    return {
        "module": node.module,
        "data": dict(node.data),
        "children": {key: node_json(child) for key, child in node.children.items()},
    }


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

    async def run_node(
        self, holder: str, asterisk: str, account: str, channel: str, node: Node
    ) -> dict[str, Any]:
        request_id = uuid.uuid4().hex
        payload = json.dumps(
            {
                "kind": "request",
                "id": request_id,
                "reply_to": self.inbox,
                "asterisk": asterisk,
                "account": account,
                "channel": channel,
                "node": node_json(node),
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
                "routed action on %s: %s (asterisk %s) did not answer in %.1f s",
                channel,
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
        error = _ERRORS.get(status, AsteriskUnavailable)
        message = data.get("message") if isinstance(data, dict) else None
        raise error(message if isinstance(message, str) else None)

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
            data = await self._local(
                str(message["asterisk"]),
                str(message["account"]),
                str(message["channel"]),
                Node.from_json(message["node"]),
            )
            status = 202
        except MetaflowsError as exc:
            status, data = exc.status, {"message": exc.detail or exc.message}
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("action router: a malformed request: %s", exc)
            return
        reply = json.dumps(
            {"kind": "reply", "id": message.get("id"), "status": status, "data": data}
        )
        try:
            await self._notify(str(message["reply_to"]), reply)
        except MetaflowsError as exc:
            logger.warning("action router: cannot answer: %s", exc)

    async def _listen_forever(self) -> None:
        delays = self._backoff.delays()
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.listen_url, timeout=10)
                closed = asyncio.Event()
                conn.add_termination_listener(functools.partial(_set_event, closed))
                await conn.add_listener(self.inbox, self._on_notify)
                self.listening.set()
                delays.reset()
                await closed.wait()
                logger.warning("action router lost its connection")
            except CONNECTION_ERRORS as exc:
                logger.warning("action router cannot connect: %s", type(exc).__name__)
            except asyncio.CancelledError:
                if conn is not None and not conn.is_closed():
                    conn.terminate()
                raise
            self.listening.clear()
            if conn is not None and not conn.is_closed():
                conn.terminate()
            await asyncio.sleep(delays.next_delay())


def _set_event(event: asyncio.Event, *_args: object) -> None:
    event.set()
