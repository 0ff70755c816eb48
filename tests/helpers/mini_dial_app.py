"""A bare dial-mode ARI application, only to exercise the scenario harness on both backends.

It is not the product's engine: no metaflows, no resync, one worker for all events. It places the
callee, bridges both legs on answer and ends the call when either side leaves.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp


class MiniDialApp:
    def __init__(self, url: str, username: str, password: str, app: str = "metaflows") -> None:
        self.base = url + "/ari"
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}
        self.app = app
        self.peer: dict[str, str] = {}  # channel id → the other leg
        self.bridge_of: dict[str, str] = {}
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MiniDialApp:
        self._session = aiohttp.ClientSession(headers=self.headers)
        self._ws = await self._session.ws_connect(
            self.base + "/events",
            params={"app": self.app},
            timeout=aiohttp.ClientWSTimeout(ws_close=1.0),  # Asterisk never answers close
        )
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _call(self, method: str, path: str, **params: Any) -> Any:
        assert self._session is not None
        query = {k: str(v) for k, v in params.items() if v is not None}
        async with self._session.request(method, self.base + path, params=query) as response:
            text = await response.text()
            return json.loads(text) if text else None

    async def _connect(self, caller: str, callee: str) -> None:
        if callee in self.bridge_of:
            return
        self.bridge_of[callee] = ""
        await self._call("POST", f"/channels/{caller}/answer")
        bridge = await self._call("POST", "/bridges", type="mixing,dtmf_events")
        for leg in (caller, callee):
            self.bridge_of[leg] = bridge["id"]
        await self._call(
            "POST", f"/bridges/{bridge['id']}/addChannel", channel=f"{caller},{callee}"
        )

    async def _status(self, method: str, path: str, **params: Any) -> int:
        assert self._session is not None
        query = {k: str(v) for k, v in params.items() if v is not None}
        async with self._session.request(method, self.base + path, params=query) as response:
            return response.status

    async def _run(self) -> None:
        """The reader only queues; a worker handles events in order (never block the reader)."""
        assert self._ws is not None
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        worker = asyncio.create_task(self._work(queue))
        try:
            async for message in self._ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    queue.put_nowait(json.loads(message.data))
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    async def _work(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            await self._on_event(await queue.get())

    async def _on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        channel = event.get("channel", {})
        if kind == "StasisStart" and event["args"][:1] == ["dial"]:
            args = event["args"]
            timeout = args[2] if len(args) > 2 and args[2] else None
            callee = await self._call(
                "POST",
                "/channels/create",
                endpoint=args[1],
                app=self.app,
                appArgs=f"callee,{channel['id']}",
                originator=channel["id"],
            )
            self.peer[channel["id"]] = callee["id"]
            self.peer[callee["id"]] = channel["id"]
            for attempt in range(5):  # Asterisk 22 may refuse a dial just after the create
                status = await self._status(
                    "POST", f"/channels/{callee['id']}/dial", caller=channel["id"], timeout=timeout
                )
                if status != 409:
                    break
                await asyncio.sleep(0.02 * (attempt + 1))
            await self._call("POST", f"/channels/{channel['id']}/ring")
        elif kind == "StasisStart" and event["args"][:1] == ["callee"]:
            # A Local callee enters Stasis before it answers; a SIP one once it answered.
            if channel["state"] == "Up":
                await self._connect(event["args"][1], channel["id"])
        elif kind == "Dial" and event["dialstatus"] == "ANSWER":
            callee = event["peer"]["id"]
            caller = self.peer.get(callee)
            if caller is not None and callee not in self.bridge_of:
                await self._connect(caller, callee)
        elif kind == "Dial" and event["dialstatus"] in (
            "BUSY",
            "NOANSWER",
            "CHANUNAVAIL",
            "CONGESTION",
        ):
            caller = self.peer.pop(event["peer"]["id"], None)
            if caller is not None:
                self.peer.pop(caller, None)
                await self._call(
                    "POST",
                    f"/channels/{caller}/variable",
                    variable="METAFLOWS_DIALSTATUS",
                    value=event["dialstatus"],
                )
                await self._call("POST", f"/channels/{caller}/continue")
        elif kind == "StasisEnd":
            other = self.peer.pop(channel["id"], None)
            bridge = self.bridge_of.pop(channel["id"], None)
            if other is not None:
                self.peer.pop(other, None)
                self.bridge_of.pop(other, None)
                await self._call("DELETE", f"/channels/{other}")
            if bridge is not None:
                await self._call("DELETE", f"/bridges/{bridge}")
