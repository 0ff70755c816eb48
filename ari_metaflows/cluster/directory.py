"""Where the channels and parking APIs find calls: this instance's engines first, then (in a
cluster) the live legs and parking slots other instances wrote, with actions routed to the
holder of the call's Asterisk."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..calls.engine import CallEngine
from ..errors import AsteriskUnavailable, NotFound
from ..features.park import ParkFeature
from ..metaflows.documents import Node
from .lease import PgLeaseStore
from .live import LiveLegs
from .parking import ParkedCalls
from .routing import ActionRouter, RoutedAction, RunNodeAction, SendParkedOnAction


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

    # -- parked calls ----------------------------------------------------------------------

    @property
    def transfer_context(self) -> str:
        """Where a retrieval sends the parked party unless the request says (the settings)."""
        return next(iter(self.engines.values())).settings.transfer_context

    def _parking(self, engine: CallEngine) -> ParkFeature | None:
        feature = engine.features.get("park")
        return feature if isinstance(feature, ParkFeature) else None

    async def parked_calls(self, account_id: str) -> list[dict[str, Any]]:
        """The account's parking lot, by slot number."""
        found: list[dict[str, Any]] = []
        for engine in self.engines.values():
            park = self._parking(engine)
            if park is not None:
                found.extend(park.parked_calls(account_id))
        return sorted(found, key=_slot_order)

    async def parked_call(self, account_id: str, slot: str) -> dict[str, Any]:
        for parked in await self.parked_calls(account_id):
            if parked["slot"] == slot:
                return parked
        raise NotFound(f"nothing is parked in slot {slot}")

    def _send_parked_on(self, engine: CallEngine, action: SendParkedOnAction) -> bool:
        """False when nothing is parked in the slot on ``engine``'s Asterisk."""
        park = self._parking(engine)
        if park is None or park.lots.get(action.account, action.slot) is None:
            return False
        if engine.gateway is None:
            raise AsteriskUnavailable("not connected to Asterisk")
        return park.send_parked_on(
            action.account, action.slot, action.context, action.extension, action.priority
        )

    async def send_parked_on(self, action: SendParkedOnAction) -> None:
        """The API's retrieval: the parked party goes on to ``extension@context``."""
        for engine in self.engines.values():
            if self._send_parked_on(engine, action):
                return
        if all(engine.gateway is None for engine in self.engines.values()):
            raise AsteriskUnavailable("not connected to Asterisk")
        raise NotFound(f"nothing is parked in slot {action.slot}")

    # -- routed actions, run here --------------------------------------------------------------

    async def run_here(self, asterisk: str, action: RoutedAction) -> dict[str, Any]:
        """A routed action: run it as a local one would (same errors)."""
        engine = self.engines.get(asterisk)
        if engine is None or engine.gateway is None:
            raise AsteriskUnavailable()
        if isinstance(action, RunNodeAction):
            call_id = await run_checked(engine, action.account, action.channel, action.node)
            return {"call_id": call_id}
        if not self._send_parked_on(engine, action):
            raise NotFound(f"nothing is parked in slot {action.slot}")
        return {"slot": action.slot}


def _slot_order(parked: dict[str, Any]) -> tuple[int, str]:
    slot = str(parked.get("slot"))
    return (int(slot) if slot.isdigit() else -1, slot)


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
        parked: ParkedCalls,
    ) -> None:
        super().__init__(engines)
        self.instance = instance
        self.live = live
        self.parked = parked
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
        # Ours, yet no call here knows it: a stale row (the resync drops or adopts it): 404.
        holder = await self._holder_of(asterisk, f"no live channel {channel_id} in this account")
        assert self.router is not None
        action = RunNodeAction(account_id, channel_id, node)
        reply = await self.router.request(holder, asterisk, action)
        return str(reply["call_id"])

    async def _holder_of(self, asterisk: str, missing: str) -> str:
        """The instance to route to for ``asterisk`` (``missing``: the 404's text when that is
        this instance, which then has a stale row)."""
        holder = await self.leases.holder(asterisk)
        if holder is None or self.router is None:
            raise AsteriskUnavailable()
        if holder == self.instance:
            raise NotFound(missing)
        return holder

    async def parked_calls(self, account_id: str) -> list[dict[str, Any]]:
        held = self.held()
        found: list[dict[str, Any]] = []
        for name, engine in self.engines.items():
            park = self._parking(engine)
            if park is not None and name in held:
                for parked in park.parked_calls(account_id):
                    found.append({**parked, "asterisk": name, "instance": self.instance})
        found.extend(await self.parked.of_account(account_id, held))
        return sorted(found, key=_slot_order)

    async def send_parked_on(self, action: SendParkedOnAction) -> None:
        held = self.held()
        for name, engine in self.engines.items():
            if name in held and self._send_parked_on(engine, action):
                return
        missing = f"nothing is parked in slot {action.slot}"
        row = await self.parked.find(action.account, action.slot, held_only=False)
        if row is None:
            raise NotFound(missing)
        asterisk = str(row["asterisk"])
        holder = await self._holder_of(asterisk, missing)
        assert self.router is not None
        await self.router.request(holder, asterisk, action)
