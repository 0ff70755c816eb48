"""Intercept and move (SPEC §6, issue 16): devices from the device directory ring as legs of
the call; the first to answer takes a leg's place, and that leg is hung up.

* ``intercept`` (``target_type`` device | user | number, ``target_id``): the intercepted leg
  is the one the module runs on (the presser, or ``{id}`` of ``POST …/channels/{id}``). With
  ``unbridged_only`` (the default) only a callee still ringing can be intercepted — directed
  call pickup: the winner becomes the callee and the caller is connected to it. Otherwise an
  answered call is taken over: the winner replaces the leg in the call's bridge.
* ``move`` (``owner_id`` default the presser's user, ``device_id``): the owner's other enabled
  devices (or ``device_id`` alone) ring; the winner replaces the presser's leg, the other
  party stays in the bridge.

No answer within ``RING_SECONDS`` (20 s) → nothing changes. The feature gets the device
directory when the service is wired (``build_registry(devices=…)``); the core never sees it.
Per-call state: the running ``Takeover`` in ``call.feature_state["takeover"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ...calls.feature import BaseFeature, CallHandle, EngineHandle, ModuleContext, ModuleSpec
from ...calls.leg import Phase, Role
from ...devices import DeviceDirectory
from ...errors import (
    Conflict,
    DatastoreUnavailable,
    InvalidRequest,
    ModuleFailed,
    NotFound,
    TargetRefused,
)
from ...metaflows.resolver import LegIdentity
from . import schemas
from .ringing import NAME, Takeover, shape_refusal
from .schemas import INTERCEPT, MOVE
from .targets import Target, intercept_targets, move_targets

logger = logging.getLogger(__name__)

__all__ = ["Takeover", "TakeoverFeature", "takeover_of"]

TargetFinder = Callable[
    [DeviceDirectory, Mapping[str, Any], str, LegIdentity | None, str], Awaitable[list[Target]]
]


def takeover_of(call: CallHandle) -> Takeover | None:
    """The intercept or move running on the call, if any."""
    running: Takeover | None = call.feature_state.get(NAME)
    return running


def _owner(call: CallHandle, role: str) -> tuple[str, LegIdentity | None]:
    """The account to look devices up in, and the identity of the leg in ``role`` (a ringing
    callee has none yet: its call's caller's account)."""
    leg = call.legs.get(role)
    identity = leg.identity if leg is not None else None
    if identity is not None:
        return identity.account_id, identity
    for other in call.legs.values():
        if other.identity is not None:
            return other.identity.account_id, None
    account = call.engine.settings.default_account
    if account is None:
        raise TargetRefused("the leg has no account to look devices up in")
    return account, None


def _pickup(action: str, data: Mapping[str, Any], call: CallHandle) -> bool:
    """Directed pickup (the call still dialing) or the takeover of a connected call."""
    if action != "intercept":
        return False
    return data.get("unbridged_only", True) is not False or call.phase is Phase.DIALING


class TakeoverFeature(BaseFeature):
    name = NAME

    def __init__(self, devices: DeviceDirectory | None = None) -> None:
        self.devices = devices
        self.stasis_entries = {NAME: _hang_up_stray}
        self.modules = {
            "intercept": ModuleSpec(INTERCEPT, self._intercept, api_check=self._check_intercept),
            "move": ModuleSpec(MOVE, self._move, api_check=self._check_move),
        }

    # -- modules -------------------------------------------------------------------------------

    async def _intercept(self, ctx: ModuleContext) -> str | None:
        return await self._run("intercept", ctx, intercept_targets)

    async def _move(self, ctx: ModuleContext) -> str | None:
        return await self._run("move", ctx, move_targets)

    async def _targets(
        self, action: str, call: CallHandle, role: str, data: Mapping[str, Any], find: TargetFinder
    ) -> tuple[bool, list[Target]]:
        """Whether it is a pickup, and the devices to ring; ``ModuleFailed`` with the reason
        when the call cannot be taken over now or there is nothing to ring."""
        pickup = _pickup(action, data, call)
        refusal = shape_refusal(call, role, pickup)
        if refusal is not None:
            raise ModuleFailed(f"{action}: {refusal}")
        if self.devices is None:
            raise TargetRefused(f"{action}: this server has no device directory")
        account, identity = _owner(call, role)
        context = call.engine.settings.transfer_context
        return pickup, await find(self.devices, data, account, identity, context)

    async def _run(self, action: str, ctx: ModuleContext, find: TargetFinder) -> str:
        call = ctx.require_call()
        data = ctx.data
        try:
            pickup, targets = await self._targets(action, call, ctx.presser, data, find)
        except TargetRefused as exc:
            raise TargetRefused(f"{action}: {exc}", not_found=exc.not_found) from exc
        takeover = Takeover(
            call,
            action,
            ctx.presser,
            targets,
            pickup=pickup,
            auto_answer=data.get("auto_answer") is True,
            ring_seconds=schemas.RING_SECONDS,
        )
        return await takeover.run()

    # -- the channels API's checks, before it answers 202 ---------------------------------------

    async def _check(
        self, action: str, call: CallHandle, role: str, data: Mapping[str, Any], find: TargetFinder
    ) -> None:
        try:
            await self._targets(action, call, role, data, find)
        except TargetRefused as exc:
            if isinstance(exc.__cause__, DatastoreUnavailable):
                raise exc.__cause__ from None
            if exc.not_found:
                raise NotFound(str(exc)) from None
            raise InvalidRequest(str(exc)) from None
        except ModuleFailed as exc:
            raise Conflict(str(exc)) from None

    async def _check_intercept(self, call: CallHandle, role: str, data: Mapping[str, Any]) -> None:
        await self._check("intercept", call, role, data, intercept_targets)

    async def _check_move(self, call: CallHandle, role: str, data: Mapping[str, Any]) -> None:
        await self._check("move", call, role, data, move_targets)

    # -- hooks (in the call's task) -------------------------------------------------------------

    async def on_leg_gone(self, call: CallHandle, role: str) -> bool:
        return role.startswith(f"{Role.TAKEOVER}-")  # a ringing device, not a party

    async def on_call_end(self, call: CallHandle) -> None:
        running = takeover_of(call)
        if running is not None:
            await running.hang_up_all()
            running.detach()

    def busy(self, call: CallHandle) -> str | None:
        running = takeover_of(call)
        if running is not None:
            article = "an" if running.action == "intercept" else "a"
            return f"{article} {running.action} is already running on this call"
        return None

    def describe(self, call: CallHandle, role: str) -> dict[str, Any]:
        running = takeover_of(call)
        return {"takeover": None if running is None else running.view()}


async def _hang_up_stray(engine: EngineHandle, channel: dict[str, Any], args: list[str]) -> None:
    """A ringing device whose call already ended."""
    await engine.hangup(channel["id"])
