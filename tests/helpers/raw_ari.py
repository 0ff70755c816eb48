"""A deliberately plain ARI client for testing the simulator itself (no aioari in the way)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp


class RawAri:
    def __init__(self, url: str, username: str, password: str, app: str) -> None:
        self.base = url + "/ari"
        self.headers = {"Authorization": aiohttp.encode_basic_auth(username, password)}
        self.app = app
        self.events: list[dict[str, Any]] = []
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> RawAri:
        self._session = aiohttp.ClientSession(headers=self.headers)
        self._ws = await self._session.ws_connect(self.base + "/events", params={"app": self.app})
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.events.append(json.loads(message.data))
                self._arrived.set()
                self._arrived = asyncio.Event()

    async def wait_event(
        self,
        event_type: str,
        where: Callable[[dict[str, Any]], bool] = lambda e: True,
        timeout: float = 5.0,
        start: int = 0,
    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events[start:]:
                    if event["type"] == event_type and where(event):
                        return event
                await self._arrived.wait()

    async def request(self, method: str, path: str, **params: Any) -> tuple[int, Any]:
        assert self._session is not None
        body = params.pop("json", None)
        query = {k: str(v) for k, v in params.items() if v is not None}
        async with self._session.request(
            method, self.base + path, params=query, json=body
        ) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None

    def types(self, channel_id: str | None = None) -> list[str]:
        return [
            e["type"]
            for e in self.events
            if channel_id is None
            or e.get("channel", {}).get("id") == channel_id
            or e.get("peer", {}).get("id") == channel_id
        ]
