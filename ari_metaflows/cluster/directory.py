"""Where the channels API finds calls: this instance's engines first, then (in a cluster) the
live legs other instances wrote, with actions routed to the holder of the call's Asterisk."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..calls.engine import CallEngine
from ..errors import AsteriskUnavailable, NotFound
from ..metaflows.documents import Node
from .lease import PgLeaseStore
from .live import LiveLegs
from .routing import ActionRouter


async def run_checked(engine: CallEngine, account_id: str, channel_id: str, node: Node) -> str:
    """Run ``node`` on a live leg after what the module can check up front (intercept: no such
    device), so the API answers that as a 4xx instead of a 202."""
    spec = engine.features.modules.get(node.module)
    if spec is not None and spec.api_check is not None:
        call, role = engine.leg(account_id, channel_id)
        await spec.api_check(call, role, node.data)
    return engine.run_node(account_id, channel_id, node)


class CallDirectory:
    """One instance alone: its engines (one per Asterisk server it serves)."""

    def __init__(self, engines: Mapping[str, CallEngine]) -> None:
        self.engines = dict(engines)

    async def legs_of_account(self, account_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for engine in self.engines.values():
            found.extend(engine.legs_of_account(account_id))
        return found

    def _local(self, account_id: str, channel_id: str) -> CallEngine | None:
        for engine in self.engines.values():
            try:
                engine.leg(account_id, channel_id)
            except NotFound:
                continue
            return engine
        return None

    async def leg(self, account_id: str, channel_id: str) -> dict[str, Any]:
        engine = self._local(account_id, channel_id)
        if engine is None:
            raise NotFound(f"no live channel {channel_id} in this account")
        call, role = engine.leg(account_id, channel_id)
        return call.describe(role)

    async def run_node(self, account_id: str, channel_id: str, node: Node) -> str:
        """Run ``node`` on a live leg; answers the call id."""
        engine = self._local(account_id, channel_id)
        if engine is None:
            raise NotFound(f"no live channel {channel_id} in this account")
        return await run_checked(engine, account_id, channel_id, node)

    async def run_here(
        self, asterisk: str, account_id: str, channel_id: str, node: Node
    ) -> dict[str, Any]:
        """A routed action: run it as a local one would (same errors)."""
        engine = self.engines.get(asterisk)
        if engine is None or engine.gateway is None:
            raise AsteriskUnavailable()
        return {"call_id": await run_checked(engine, account_id, channel_id, node)}


class ClusterDirectory(CallDirectory):
    """Several instances on one database: what this instance does not hold is read from the
    live legs and acted on through the holder of the call's Asterisk."""

    def __init__(
        self,
        engines: Mapping[str, CallEngine],
        *,
        instance: str,
        live: LiveLegs,
        leases: PgLeaseStore,
        held: Callable[[], set[str]],
    ) -> None:
        super().__init__(engines)
        self.instance = instance
        self.live = live
        self.leases = leases
        self.held = held  # the Asterisk servers whose ARI connection this instance holds
        self.router: ActionRouter | None = None

    async def legs_of_account(self, account_id: str) -> list[dict[str, Any]]:
        found = await super().legs_of_account(account_id)
        for view in found:
            view["instance"] = self.instance
        found.extend(await self.live.of_account(account_id, self.held()))
        return found

    async def leg(self, account_id: str, channel_id: str) -> dict[str, Any]:
        try:
            local = await super().leg(account_id, channel_id)
        except NotFound:
            view = await self.live.find(account_id, channel_id)
            if view is None or view.get("asterisk") in self.held():
                raise
            return view
        local["instance"] = self.instance
        return local

    async def run_node(self, account_id: str, channel_id: str, node: Node) -> str:
        try:
            return await super().run_node(account_id, channel_id, node)
        except NotFound:
            view = await self.live.find(account_id, channel_id, held_only=False)
            if view is None:
                raise
        asterisk = str(view.get("asterisk"))
        holder = await self.leases.holder(asterisk)
        if holder is None or self.router is None:
            raise AsteriskUnavailable()
        if holder == self.instance:
            # Ours, yet no call here knows it: a stale row (the resync drops or adopts it).
            raise NotFound(f"no live channel {channel_id} in this account")
        reply = await self.router.run_node(holder, asterisk, account_id, channel_id, node)
        return str(reply["call_id"])
