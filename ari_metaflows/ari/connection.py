"""Keeps one ARI connection alive: connect, open the event websocket, resync, reconnect.

The websocket reader only hands events to ``route`` (which must not block: Asterisk drops a
client that stalls ~100 ms). After every (re)connection the websocket is opened first and then
``on_connected`` resynchronises state, so no event falls between the two. A different Asterisk
start time than before means Asterisk restarted and every call we knew is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..backoff import Backoff, Delays
from .gateway import AriGateway, AriTimeouts

logger = logging.getLogger(__name__)

EventRouter = Callable[[dict[str, Any]], None]
OnConnected = Callable[[AriGateway, bool], Awaitable[None]]


RECONNECT = Backoff(initial=0.5, maximum=30.0)
HEALTHY_AFTER = 30.0  # seconds: a connection that lasted this long starts the backoff afresh


class AriConnection:
    def __init__(
        self,
        *,
        url: str,
        username: str,
        password: str,
        app: str,
        route: EventRouter,
        on_connected: OnConnected,
        on_disconnected: Callable[[], None] | None = None,
        timeouts: AriTimeouts | None = None,
        backoff: Backoff = RECONNECT,
        healthy_after: float = HEALTHY_AFTER,
    ) -> None:
        self.url = url
        self._username = username
        self._password = password
        self.app = app
        self._route = route
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self.timeouts = timeouts or AriTimeouts()
        self.backoff = backoff
        self.healthy_after = healthy_after
        self.gateway: AriGateway | None = None
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._startup_time: str | None = None
        self._reached = False  # the current session got connected

    async def run_forever(self) -> None:
        delays: Delays | None = None  # made at the first loss of an outage, from self.backoff
        loop = asyncio.get_running_loop()
        said = False  # this outage was reported: its further attempts log at debug level only
        while True:
            started = loop.time()
            self._reached = False
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._reached or not said:
                    logger.warning(self._failure_message(exc))
                else:
                    logger.debug("ARI connection to %s failed: %s", self.url, _describe(exc))
            quiet, said = said and not self._reached, True
            self.connected.clear()
            if delays is None or loop.time() - started > self.healthy_after:
                delays = self.backoff.delays()
            delay = delays.next_delay()
            logger.log(
                logging.DEBUG if quiet else logging.INFO, "reconnecting to ARI in %.1f s", delay
            )
            await asyncio.sleep(delay)
            self.reconnects += 1

    async def _session(self) -> None:
        gateway = await AriGateway.connect(
            self.url, self._username, self._password, self.app, self.timeouts
        )
        self.gateway = gateway
        runner = asyncio.create_task(gateway.run_events(self._receive))
        try:
            await self._wait_for_websocket(gateway, runner)
            info = await gateway.info()
            startup = info.get("status", {}).get("startup_time")
            restarted = self._startup_time is not None and startup != self._startup_time
            if restarted:
                logger.warning("Asterisk restarted (startup time %s): dropping calls", startup)
            self._startup_time = startup
            await self._on_connected(gateway, restarted)
            self.connected.set()
            self._reached = True
            logger.info("ARI connected to %s as application %s", self.url, self.app)
            await runner
            logger.warning("ARI websocket closed")
        finally:
            self.connected.clear()
            self.gateway = None
            if self._on_disconnected is not None:
                self._on_disconnected()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await gateway.close()

    def _failure_message(self, exc: Exception) -> str:
        if self._startup_time is not None:  # we had Asterisk before: a lost connection
            return f"ARI connection to {self.url} failed: {_describe(exc)}"
        return (
            f"waiting for Asterisk: no ARI connection to {self.url} ({_describe(exc)}); "
            "retrying quietly (METAFLOWS_LOG_LEVEL=DEBUG shows each attempt). No Asterisk? Run "
            "the simulator in another terminal, `./dev simulate`, and start this service with "
            "ARI_URL=http://127.0.0.1:8088 ARI_USERNAME=asterisk ARI_PASSWORD=secret"
        )

    async def _wait_for_websocket(self, gateway: AriGateway, runner: asyncio.Task[None]) -> None:
        async with asyncio.timeout(self.timeouts.connect):
            while not gateway.websockets:
                if runner.done():
                    runner.result()  # raises why the websocket could not open
                    raise ConnectionError("websocket closed at once")
                await asyncio.sleep(0.005)

    def _receive(self, event: Any) -> None:
        """Runs on the reader: route only, never block, never raise."""
        if not isinstance(event, dict):
            return
        if event.get("type") == "ApplicationReplaced":
            logger.error(
                "ApplicationReplaced: another ARI client took over application %s; "
                "this instance receives no more events for it",
                self.app,
            )
        try:
            self._route(event)
        except Exception:
            logger.exception("dropping an event that could not be routed")


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    return f"{type(exc).__name__} {status}" if status else type(exc).__name__
