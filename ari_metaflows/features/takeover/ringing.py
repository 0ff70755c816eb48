"""A running intercept or move: devices ring as legs of the call; the first to answer takes
the intercepted (or moved) leg's place, which is hung up.

While it runs this is an interceptor of the call: the call's task forwards the ringing legs'
events (their Dial progress, Stasis entry, hang-up) here and handles nothing of them itself.
The flow acts through ARI and changes the call only through ``call.ask``/``call.ask_async``,
so the owner never sees half a change.

Two shapes (SPEC §6):

* **pickup** (the call is still dialing, the intercepted leg is the ringing callee): the
  winner becomes the callee, the old callee is hung up, and the call connects as if the winner
  had been dialled (``CallHandle.connect_callee``: the caller is answered and bridged).
* **takeover** (the call is connected): the winner joins the call's bridge, takes the leg's
  role, and the old leg is hung up; the other party stays in the bridge throughout.

The call ending while the devices ring hangs them all up (``TakeoverFeature.on_call_end``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ...calls.feature import CallHandle
from ...calls.leg import Leg, Phase, Role
from ...calls.messages import LegGone
from ...errors import AriError, AriUnavailable, Gone, ModuleFailed
from .targets import Target

logger = logging.getLogger(__name__)

NAME = "takeover"
FAILED_DIAL = {"BUSY", "NOANSWER", "CHANUNAVAIL", "CONGESTION", "CANCEL"}


def shape_refusal(
    call: CallHandle, role: str, pickup: bool, *, running: object = None
) -> str | None:
    """Why the leg in ``role`` cannot be intercepted (``pickup``) or taken over now, or None
    (``running``: the takeover asking, which does not count as keeping the call busy)."""
    leg = call.legs.get(role)
    if leg is None or leg.gone or not leg.party:
        return f"the {role} leg is not on the call"
    if pickup:
        if call.phase is not Phase.DIALING or role != Role.CALLEE:
            return "only a leg still ringing can be intercepted (unbridged_only)"
    elif call.phase is not Phase.CONNECTED or call.bridge_id is None:
        return "the call is not connected"
    for feature in call.engine.features.features:
        if feature.name == NAME and call.feature_state.get(NAME) is running is not None:
            continue
        refusal = feature.busy(call)
        if refusal is not None:
            return refusal
    return None


class _CalleeAnswered:
    """The dialled callee answered while a pickup rang: the pickup has lost."""


CALLEE_ANSWERED = _CalleeAnswered()


@dataclass
class Ringing:
    """One device ringing as a leg of the call."""

    role: str
    target: Target
    channel_id: str = field(default_factory=lambda: f"mf-{uuid.uuid4().hex}")
    snapshot: dict[str, Any] = field(default_factory=dict)
    in_stasis: bool = False
    answered: bool = False
    gone: bool = False


class Takeover:
    def __init__(
        self,
        call: CallHandle,
        action: str,
        leg: str,
        targets: list[Target],
        *,
        pickup: bool,
        auto_answer: bool,
        ring_seconds: float,
    ) -> None:
        self.call = call
        self.action = action  # "intercept" or "move"
        self.leg = leg  # the role whose leg is replaced
        self.pickup = pickup
        self.auto_answer = auto_answer
        self.ring_seconds = ring_seconds
        self.ringing = [
            Ringing(f"{Role.TAKEOVER}-{n}", target) for n, target in enumerate(targets, 1)
        ]
        self._by_channel = {r.channel_id: r for r in self.ringing}
        self.queue: asyncio.Queue[dict[str, Any] | LegGone | _CalleeAnswered] = asyncio.Queue()
        self.state = "starting"  # → ringing → done
        self._winner: Ringing | None = None  # the device that took the leg's place

    def view(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "state": self.state,
            "leg": self.leg,
            "targets": [r.target.label for r in self.ringing if not r.gone],
        }

    # -- which events are ours (called by the owner task) -------------------------------------

    def wants(self, event: dict[str, Any]) -> bool:
        kind = event.get("type")
        if kind == "Dial":
            peer = event.get("peer")
            peer_id = peer.get("id") if isinstance(peer, dict) else None
            if peer_id in self._by_channel:
                return True
            if (
                self.pickup
                and event.get("dialstatus") == "ANSWER"
                and peer_id == self.call.legs[self.leg].channel_id
            ):
                # The dialled callee won the race: let the core connect it, and stop ringing.
                self.queue.put_nowait(CALLEE_ANSWERED)
            return False
        channel = event.get("channel")
        return isinstance(channel, dict) and channel.get("id") in self._by_channel

    def wants_gone(self, role: str) -> bool:
        return any(r.role == role for r in self.ringing)

    def deliver(self, item: dict[str, Any] | LegGone) -> None:
        self.queue.put_nowait(item)

    # -- in the call's task --------------------------------------------------------------------

    def attach(self) -> None:
        """Check the call can be taken over now and make the ringing legs legs of the call."""
        call = self.call
        self._check_shape()
        call.feature_state[NAME] = self
        call.add_interceptor(self)
        for ringing in self.ringing:
            call.add_leg(Leg(ringing.role, ringing.channel_id, party=False))

    def _check_shape(self) -> None:
        refusal = shape_refusal(self.call, self.leg, self.pickup, running=self)
        if refusal is not None:
            raise ModuleFailed(f"{self.action}: {refusal}")

    def detach(self, winner: Ringing | None = None) -> None:
        """Stop intercepting. What the flow took but did not handle goes back to the call, in
        order: events of the ``winner`` (now the leg in ``self.leg``: its first digits, its
        hang-up) and its departure as that leg's. The other devices' events go nowhere: they
        are hung up and were never parties."""
        call = self.call
        unhandled: list[dict[str, Any] | LegGone] = []
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if winner is None or isinstance(item, _CalleeAnswered):
                continue
            if isinstance(item, LegGone):
                if item.role == winner.role:
                    unhandled.append(LegGone(self.leg))
            elif item.get("type") != "Dial" and _channel_id(item) == winner.channel_id:
                unhandled.append(item)
        call.remove_interceptor(self, unhandled)
        if call.feature_state.get(NAME) is self:
            del call.feature_state[NAME]
        for ringing in self.ringing:
            if ringing.role in call.legs:
                call.drop_leg(ringing.role)
        self.state = "done"

    async def hang_up_all(self, keep: Ringing | None = None) -> None:
        gateway = self.call.engine.gateway
        for ringing in self.ringing:
            if ringing is keep or ringing.gone:
                continue
            ringing.gone = True
            if gateway is not None:
                await self.call.safely(gateway.hangup(ringing.channel_id))

    # -- the flow ------------------------------------------------------------------------------

    async def run(self) -> str:
        """Ring, wait for the first answer (``ring_seconds`` at most), take over. Returns the
        module's branch; raises ``ModuleFailed`` when nothing could change."""
        await self.call.ask(self.attach)
        try:
            return await self._run()
        finally:
            await self.hang_up_all(keep=self._winner)
            if self.call.feature_state.get(NAME) is self:
                await self.call.ask(self.detach)

    async def _run(self) -> str:
        call = self.call
        await self._ring_all()
        self.state = "ringing"
        logger.info(
            "call %s: %s of %s rings %s",
            call.id,
            self.action,
            self.leg,
            ", ".join(r.target.label for r in self.ringing if not r.gone),
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ring_seconds
        while True:
            try:
                item = await asyncio.wait_for(self.queue.get(), max(deadline - loop.time(), 0))
            except TimeoutError:
                raise ModuleFailed(
                    f"{self.action}: nobody answered within {self.ring_seconds:.0f} s"
                ) from None
            if item is CALLEE_ANSWERED:
                raise ModuleFailed(f"{self.action}: the call was answered before the pickup")
            winner = self._progress(item)
            if winner is not None:
                await self.hang_up_all(keep=winner)
                await self.call.ask_async(partial(self._take_place, winner))
                self._winner = winner
                logger.info(
                    "call %s: %s: %s answered and took the %s leg's place",
                    call.id,
                    self.action,
                    winner.target.label,
                    self.leg,
                )
                return "answered"
            if all(r.gone for r in self.ringing):
                raise ModuleFailed(f"{self.action}: no target device could be reached")

    async def _ring_all(self) -> None:
        call = self.call
        gateway = call.engine.gateway_or_raise()
        originator = call.legs[call.other(self.leg)].channel_id
        refusals = []
        for ringing in self.ringing:
            try:
                ringing.snapshot = await gateway.create_channel(
                    ringing.target.dial_string,
                    app_args=f"{NAME},{call.id}",
                    channel_id=ringing.channel_id,
                    originator=originator,
                )
                if self.auto_answer and ringing.target.dial_string.startswith("PJSIP/"):
                    await call.safely(
                        gateway.set_variable(
                            ringing.channel_id, "PJSIP_HEADER(add,Call-Info)", "answer-after=0"
                        )
                    )
                await call.dial_with_retry(
                    ringing.channel_id, originator, max(int(self.ring_seconds), 1)
                )
            except (AriError, AriUnavailable) as exc:
                logger.info(
                    "call %s: %s: cannot ring %s (%s): %s",
                    call.id,
                    self.action,
                    ringing.target.label,
                    ringing.target.dial_string,
                    exc,
                )
                refusals.append(f"{ringing.target.label}: {exc}")
                if not isinstance(exc, Gone):
                    await call.safely(gateway.hangup(ringing.channel_id))
                ringing.gone = True
        if all(r.gone for r in self.ringing):
            raise ModuleFailed(f"{self.action}: Asterisk refused to ring {'; '.join(refusals)}")

    def _progress(self, item: dict[str, Any] | LegGone | _CalleeAnswered) -> Ringing | None:
        """Note a ringing leg's progress; answers the leg that has won, if one has."""
        if isinstance(item, _CalleeAnswered):
            return None
        if isinstance(item, LegGone):
            for each in self.ringing:
                if each.role == item.role:
                    each.gone = True
            return None
        kind = item.get("type")
        ringing: Ringing | None
        if kind == "Dial":
            peer = item.get("peer") or {}
            ringing = self._by_channel.get(str(peer.get("id")))
            if ringing is None:
                return None
            status = item.get("dialstatus")
            if status == "ANSWER":
                ringing.answered = True
            elif status in FAILED_DIAL:
                ringing.gone = True
                return None
        else:
            channel = item.get("channel") or {}
            ringing = self._by_channel.get(str(channel.get("id")))
            if ringing is None:
                return None
            if kind in ("StasisEnd", "ChannelDestroyed"):
                ringing.gone = True
                return None
            if kind in ("StasisStart", "ChannelStateChange"):
                ringing.snapshot = channel
                ringing.in_stasis = ringing.in_stasis or kind == "StasisStart"
                ringing.answered = ringing.answered or channel.get("state") == "Up"
        if ringing.answered and ringing.in_stasis and not ringing.gone:
            return ringing
        return None

    async def _take_place(self, winner: Ringing) -> None:
        """In the call's task: the winner takes the leg's place; the old leg is hung up."""
        call = self.call
        gateway = call.engine.gateway_or_raise()
        self._check_shape()  # the call may have changed while the devices rang
        old = call.legs[self.leg]
        leg = call.legs.get(winner.role) or Leg(winner.role, winner.channel_id)
        leg.name = str(winner.snapshot.get("name", ""))
        leg.state = "Up"
        leg.answered = leg.in_stasis = True
        if self.pickup:
            call.replace_leg(self.leg, leg, resolve=False)
            self.detach(winner)
            await call.safely(gateway.hangup(old.channel_id, "answered_elsewhere"))
            await call.connect_callee(winner.snapshot)
            return
        bridge_id = call.bridge_id
        assert bridge_id is not None  # _check_shape
        # Its owner and codes first: whether the bridge absorbs its digits depends on them,
        # and it joins with absorbDTMF from the start (no re-add, no gap in its audio).
        leg.identity, leg.metaflows = await call.owner_of(winner.snapshot)
        call.replace_leg(self.leg, leg, resolve=False)
        call.build_collectors()
        try:
            await call.join_bridge(bridge_id, [self.leg])
        except BaseException:
            call.replace_leg(self.leg, old, resolve=False)  # it stays: nothing changed
            call.build_collectors()
            raise
        self.detach(winner)
        await call.safely(gateway.hangup(old.channel_id))


def _channel_id(event: dict[str, Any]) -> str | None:
    channel = event.get("channel")
    return channel.get("id") if isinstance(channel, dict) else None
