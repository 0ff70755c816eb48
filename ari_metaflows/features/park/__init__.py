"""Park feature: ``park`` (the other party waits in the account's parking lot, the presser hears
the slot) and ``Stasis(metaflows,unpark,<slot>)`` (a channel takes the parker's place).

Per-call state: ``ParkState`` in ``call.feature_state["park"]`` once the call was parked. The
lots are the feature's (one per account, shared by the calls of this instance). The call's task
runs the park timeout (``call.set_deadline``); the API's retrieval goes through
``ParkFeature.send_parked_on``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ...ari.gateway import AriGateway
from ...calls.feature import (
    BaseFeature,
    CallHandle,
    EngineHandle,
    ModuleContext,
    ModuleSpec,
    first_capture,
)
from ...calls.leg import Leg, Phase, Role
from ...errors import (
    AriError,
    AriUnavailable,
    DatastoreUnavailable,
    Gone,
    ModuleFailed,
    SlotUnavailable,
)
from ...metaflows.resolver import LegIdentity
from ...metaflows.schema import Schema
from .lots import (
    ParkedParty,
    ParkingLots,
    SharedSlots,
    SlotRange,
    dial_string_of,
    parse_slot_range,
)

logger = logging.getLogger(__name__)

NAME = "park"
# [+] Not a Kazoo module (Kazoo has no park schema).
PARK: Schema = {
    "type": "object",
    "properties": {
        "slot": {"type": "string", "pattern": r"^[0-9]{1,8}$"},
        "timeout": {"type": "integer", "minimum": 1, "maximum": 3600, "default": 120},
    },
}
TIMEOUT = PARK["properties"]["timeout"]["default"]
TIMEOUT_CONTEXT = "metaflows-park-timeout"

__all__ = ["ParkFeature", "ParkingLots", "SlotRange", "dial_string_of", "parse_slot_range"]


@dataclass
class Parked:
    account_id: str
    slot: str
    role: str  # the parked party
    parker: str  # the parker's dial string, for the timeout's ring-back
    deadline: float  # loop time
    since: float = field(default_factory=time.time)
    timeout: float = float(TIMEOUT)
    adopted: bool = False  # from a previous holder of the Asterisk: its owner is not known yet


@dataclass
class ParkState:
    parked: Parked | None = None
    hangup_after: dict[str, str] = field(default_factory=dict)  # playback id → channel id


def parked(call: CallHandle) -> Parked | None:
    state: ParkState | None = call.feature_state.get(NAME)
    return state.parked if state is not None else None


class ParkFeature(BaseFeature):
    name = NAME
    events = frozenset({"PlaybackFinished"})

    def __init__(
        self, slots: SlotRange | None = None, timeout_context: str = TIMEOUT_CONTEXT
    ) -> None:
        self.lots = ParkingLots(slots or SlotRange())
        # Several instances: slots are also claimed in the database (set at wiring).
        self.shared: SharedSlots | None = None
        self.timeout_context = timeout_context
        self.modules = {"park": ModuleSpec(PARK, self.park_module)}
        self.stasis_entries = {"unpark": self.unpark}

    # -- the module (a flow) --------------------------------------------------------------

    async def park_module(self, ctx: ModuleContext) -> str | None:
        data = ctx.data
        slot = data.get("slot")
        if not isinstance(slot, str) or not slot:
            first = first_capture(data)
            slot = first if first is not None and first.isdigit() else None
        timeout = data.get("timeout", TIMEOUT)
        return await self.park(
            ctx.require_call(),
            ctx.presser,
            slot,
            float(timeout) if isinstance(timeout, int) else float(TIMEOUT),
        )

    async def park(self, call: CallHandle, presser: str, wanted: str | None, timeout: float) -> str:
        gateway = call.engine.gateway_or_raise()
        shared: tuple[str, str] | None = None
        try:
            if self.shared is not None:
                shared = await self._claim_shared(call, presser, wanted, timeout)
                wanted = shared[1]
            parker_channel, bridge_id, slot, account, parked_name = await call.ask(
                lambda: self._claim(call, presser, wanted, timeout)
            )
        except (SlotUnavailable, ModuleFailed) as exc:
            if shared is not None and self.shared is not None:
                self.shared.release(*shared)
            if not isinstance(exc, SlotUnavailable):
                raise
            parker = call.legs.get(presser)
            if parker is not None:
                await call.safely(
                    gateway.play_on_channel(parker.channel_id, "sound:pbx-parkingfailed")
                )
            raise
        await call.leaving("stopped: the call was parked")
        await call.safely(gateway.remove_from_bridge(bridge_id, parker_channel))
        await call.safely(gateway.start_bridge_moh(bridge_id, None))
        try:
            playback = await gateway.play_on_channel(parker_channel, f"digits:{slot}")
            await call.ask(lambda: self._hang_up_after(call, playback, parker_channel))
        except (AriError, AriUnavailable):
            await call.safely(gateway.hangup(parker_channel))
        logger.info("call %s: %s parked in slot %s of %s", call.id, parked_name, slot, account)
        return "parked"

    async def _claim_shared(
        self, call: CallHandle, presser: str, wanted: str | None, timeout: float
    ) -> tuple[str, str]:
        """Take the slot in the cluster's table first: (account, slot)."""
        assert self.shared is not None
        parker, parked_leg = call.require_connected(presser)
        identity = parker.identity or parked_leg.identity
        if identity is None:
            raise ModuleFailed("no account to park in")
        if wanted is not None and wanted not in self.lots.slots:
            raise SlotUnavailable(f"slot {wanted} is not in the parking lot ({self.lots.slots})")
        party = ParkedParty(
            parked_leg.channel_id,
            parked_leg.name,
            call.id,
            dial_string_of(parker.name),
            timeout,
            call.bridge_id,
        )
        try:
            slot = await self.shared.claim(identity.account_id, wanted, self.lots.slots, party)
        except DatastoreUnavailable:
            raise SlotUnavailable("the parking lots are unavailable") from None
        if slot is None:
            raise SlotUnavailable(
                f"slot {wanted} is taken" if wanted else "the parking lot is full"
            )
        return identity.account_id, slot

    def _claim(
        self, call: CallHandle, presser: str, wanted: str | None, timeout: float
    ) -> tuple[str, str, str, str, str]:
        """In the call's task: take a slot and put the call in the parked phase."""
        parker, parked_leg = call.require_connected(presser)
        identity = parker.identity or parked_leg.identity
        if identity is None:
            raise ModuleFailed("no account to park in")
        slot = self.lots.claim(identity.account_id, wanted, call)
        now = asyncio.get_running_loop().time()
        state = self._state(call)
        state.parked = Parked(
            identity.account_id,
            slot,
            call.other(presser),
            dial_string_of(parker.name),
            now + timeout,
            timeout=timeout,
        )
        call.set_phase(Phase.PARKED)
        call.set_deadline(NAME, now + timeout)
        call.collectors = {}
        assert call.bridge_id is not None
        return parker.channel_id, call.bridge_id, slot, identity.account_id, parked_leg.name

    def _state(self, call: CallHandle) -> ParkState:
        state: ParkState | None = call.feature_state.get(NAME)
        if state is None:
            state = call.feature_state[NAME] = ParkState()
        return state

    def _hang_up_after(self, call: CallHandle, playback: str, channel_id: str) -> None:
        self._state(call).hangup_after[playback] = channel_id

    # -- hooks (the call's task) ----------------------------------------------------------

    async def on_event(self, call: CallHandle, event: dict[str, Any]) -> None:
        state: ParkState | None = call.feature_state.get(NAME)
        if state is None or not state.hangup_after:
            return
        playback_id = str((event.get("playback") or {}).get("id", ""))
        then_hang_up = state.hangup_after.pop(playback_id, None)
        gateway = call.engine.gateway
        if then_hang_up is not None and gateway is not None:
            await call.safely(gateway.hangup(then_hang_up))

    async def on_timer(self, call: CallHandle, now: float) -> None:
        state = parked(call)
        if state is None or call.phase is not Phase.PARKED:
            return
        if now < state.deadline:
            call.set_deadline(NAME, state.deadline)
            return
        logger.info(
            "call %s: slot %s timed out; ringing back %s", call.id, state.slot, state.parker
        )
        self._unpark_slot(call)
        leg = call.legs[state.role]
        gateway = call.engine.gateway_or_raise()
        await call.safely(gateway.set_variable(leg.channel_id, "METAFLOWS_PARKER", state.parker))
        await call.safely(gateway.set_variable(leg.channel_id, "METAFLOWS_PARKED_SLOT", state.slot))
        await self._send_parked_leg(call, leg, self.timeout_context, state.slot, 1)

    async def on_leg_gone(self, call: CallHandle, role: str) -> bool:
        state = parked(call)
        # The parker leaves after hearing the slot; the parked party waits.
        return call.phase is Phase.PARKED and state is not None and role != state.role

    async def on_call_end(self, call: CallHandle) -> None:
        self._unpark_slot(call)

    def describe(self, call: CallHandle, role: str) -> dict[str, Any]:
        state = parked(call)
        return {"parked_slot": state.slot if state else None}

    def _unpark_slot(self, call: CallHandle) -> None:
        state: ParkState | None = call.feature_state.get(NAME)
        if state is not None and state.parked is not None:
            self.lots.release(state.parked.account_id, state.parked.slot, call)
            if self.shared is not None:
                self.shared.release(state.parked.account_id, state.parked.slot)
            state.parked = None
            call.clear_deadline(NAME)

    # -- adoption (a cluster's new holder of the Asterisk) ----------------------------------

    async def adopt(
        self, engine: EngineHandle, lone: list[tuple[dict[str, Any], str | None]]
    ) -> set[str]:
        """After a takeover's resync: the parked parties the previous holder left waiting alone
        in their bridge become parked calls of this instance again (same slot, the rest of
        their timeout); the other slots it took are freed. ``lone``: the channels in our app
        that no call knows and that share no bridge, with their bridge. Answers the channel
        ids adopted (the engine hangs up the others)."""
        if self.shared is None:
            return set()
        inherited = self.shared.inherited()
        adopted: set[str] = set()
        for snapshot, bridge_id in lone:
            held = inherited.pop(str(snapshot.get("id")), None)
            if held is None:
                continue
            if (
                bridge_id is None  # not waiting alone in a bridge
                or held.slot not in self.lots.slots  # another lot configured here
                or self.lots.get(held.account_id, held.slot) is not None
            ):
                logger.warning(
                    "slot %s of %s: %s cannot be adopted; hanging it up",
                    held.slot,
                    held.account_id,
                    snapshot.get("name"),
                )
                inherited[held.party.channel_id] = held
                continue
            # No await from here to the end of the iteration: the call's task starts after.
            call = engine.adopt_lone_call(snapshot, bridge_id, Role.CALLEE)
            leg = call.legs[Role.CALLEE]
            # The owner's metaflows are looked up when someone retrieves the call.
            leg.identity = LegIdentity(held.account_id)
            self.lots.claim(held.account_id, held.slot, call)
            now = asyncio.get_running_loop().time()
            self._state(call).parked = Parked(
                held.account_id,
                held.slot,
                Role.CALLEE,
                held.party.parker,
                now + held.remaining,
                since=held.parked_at,
                timeout=held.party.timeout,
                adopted=True,
            )
            call.set_phase(Phase.PARKED)
            call.set_deadline(NAME, now + held.remaining)
            adopted.add(leg.channel_id)
            logger.info(
                "call %s: %s adopted, parked in slot %s of %s",
                call.id,
                leg.name,
                held.slot,
                held.account_id,
            )
        for held in inherited.values():  # the party left meanwhile
            self.shared.release(held.account_id, held.slot)
        return adopted

    # -- retrieval ------------------------------------------------------------------------

    async def unpark(self, engine: EngineHandle, channel: dict[str, Any], args: list[str]) -> None:
        """``Stasis(metaflows,unpark,<slot>)``: hand the channel to the parked call, or send it
        on with ``METAFLOWS_UNPARK_STATUS=EMPTY`` (the dialplan plays the sound)."""
        gateway = engine.gateway
        if gateway is None or len(args) < 2:
            return
        slot = args[1]
        identity = await engine.identity_of_channel(gateway, channel)
        call = self.lots.get(identity.account_id, slot) if identity else None
        if call is None:
            logger.info("unpark of slot %s by %s: nothing parked there", slot, channel.get("name"))
            await engine.send_on(channel["id"], "EMPTY", "METAFLOWS_UNPARK_STATUS")
            return
        call.track_channel(channel["id"])
        call.post(lambda: self._retrieved(call, gateway, channel))

    async def _retrieved(
        self, call: CallHandle, gateway: AriGateway, snapshot: dict[str, Any]
    ) -> None:
        """In the call's task: the retrieving channel takes the parker's place."""
        channel_id = snapshot["id"]
        state = parked(call)
        if call.phase is not Phase.PARKED or state is None or call.bridge_id is None:
            call.engine.untrack_channel(channel_id)
            await call.safely(gateway.set_variable(channel_id, "METAFLOWS_UNPARK_STATUS", "EMPTY"))
            await call.safely(gateway.continue_in_dialplan(channel_id))
            return
        parker_role = call.other(state.role)
        leg = Leg(parker_role, channel_id, snapshot.get("name", ""), snapshot.get("state", ""))
        leg.in_stasis = leg.answered = True
        call.replace_leg(parker_role, leg, resolve=False)
        self._unpark_slot(call)
        # Owners first: whose digits the bridge absorbs depends on the collectors.
        leg.identity, leg.metaflows = await call.owner_of(snapshot)
        parked_leg = call.legs[state.role]
        if parked_leg.identity is None or state.adopted:
            parked_leg.identity, parked_leg.metaflows = await call.owner_of(
                {"id": parked_leg.channel_id, "name": parked_leg.name}
            )
        call.build_collectors()
        try:
            if snapshot.get("state") != "Up":
                await gateway.answer(channel_id)
            await gateway.stop_bridge_moh(call.bridge_id)
            await call.join_bridge(call.bridge_id, [parker_role])
        except Gone:
            return  # someone left meanwhile; their hangup event ends the call
        leg.state = "Up"
        call.set_phase(Phase.CONNECTED)
        logger.info("call %s: slot %s retrieved by %s", call.id, state.slot, leg.name)

    def send_parked_on(
        self, account_id: str, slot: str, context: str, extension: str, priority: int
    ) -> bool:
        """The API's retrieval: the parked party goes on to ``extension@context``. False when
        nothing is parked in the slot."""
        call = self.lots.get(account_id, slot)
        if call is None:
            return False
        call.post(lambda: self._send_parked_on(call, context, extension, priority))
        return True

    async def _send_parked_on(
        self, call: CallHandle, context: str, extension: str, priority: int
    ) -> None:
        state = parked(call)
        if state is None or call.phase is not Phase.PARKED:
            return
        self._unpark_slot(call)
        await self._send_parked_leg(call, call.legs[state.role], context, extension, priority)

    async def _send_parked_leg(
        self, call: CallHandle, leg: Leg, context: str, extension: str, priority: int
    ) -> None:
        gateway = call.engine.gateway_or_raise()
        leg.released = True
        if call.bridge_id is not None:
            await call.safely(gateway.stop_bridge_moh(call.bridge_id))
        try:
            await gateway.continue_in_dialplan(
                leg.channel_id, context=context, extension=extension, priority=priority
            )
        except (AriError, AriUnavailable) as exc:
            logger.warning("call %s: cannot send the parked party on: %s", call.id, exc)
            leg.released = False
            await call.safely(gateway.hangup(leg.channel_id))

    # -- the parked-calls listing -----------------------------------------------------------

    def parked_calls(self, account_id: str) -> list[dict[str, Any]]:
        found = []
        for call in self.lots.of_account(account_id).values():
            state = parked(call)
            if state is None:
                continue
            leg = call.legs[state.role]
            found.append(
                {
                    "slot": state.slot,
                    "channel_id": leg.channel_id,
                    "name": leg.name,
                    "call_id": call.id,
                    "parker": state.parker,
                    "parked_at": state.since,
                    "timeout": state.timeout,
                }
            )
        return found


def parking_lots(engine: EngineHandle) -> ParkingLots:
    """The parking lots of the engine's park feature."""
    feature = engine.features.get(NAME)
    if not isinstance(feature, ParkFeature):
        raise LookupError("the park feature is not wired")
    return feature.lots
