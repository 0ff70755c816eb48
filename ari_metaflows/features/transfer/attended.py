"""Attended transfer: a flow of the call that consults the target and hands over.

While it runs the transfer is an interceptor of the call: the call's own task forwards to it
every event it needs (the transferor's digits, the target's progress, either party leaving) and
handles nothing of those itself. The transfer acts through ARI and reshapes the call only by
asking the call's task (``call.ask``), so the owner never sees half a change. The target is a
leg of the call (role ``transfer_target``, not yet a party) until it takes a party's place.

Shape while it runs: the transferee stays alone in the call's bridge with music on hold; the
transferor leaves it and hears a ringing tone; the target is a Local channel into the transfer
context. On answer the transferor and the target talk in a consultation bridge.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from ...calls.feature import CallHandle
from ...calls.leg import Leg, Role
from ...calls.messages import LegGone
from ...calls.relay import duration_of
from ...errors import AriError, AriUnavailable, Gone
from .schemas import TAKEBACK_DTMF, TIMEOUT_MS

logger = logging.getLogger(__name__)

TARGET_FAILED = {"BUSY", "NOANSWER", "CHANUNAVAIL", "CONGESTION", "CANCEL"}
RINGBACK = "tone:ring"


@dataclass(frozen=True)
class TransferRequest:
    extension: str
    attended: bool = False
    takeback_dtmf: str = TAKEBACK_DTMF
    moh_class: str | None = None
    ringback: str | None = None
    timeout: float = TIMEOUT_MS / 1000  # seconds the target may ring


class AttendedTransfer:
    def __init__(
        self, call: CallHandle, transferor: str, transferee: str, request: TransferRequest
    ):
        self.call = call
        self.transferor = transferor
        self.transferee = transferee
        self.request = request
        self.queue: asyncio.Queue[dict[str, Any] | LegGone] = asyncio.Queue()
        self.target_id = f"mf-{uuid.uuid4().hex}"
        self.target_snapshot: dict[str, Any] = {}
        self.target_in_stasis = False
        self.target_answered = False
        self.target_gone = False
        self.transferor_gone = False
        self.consult_bridge: str | None = None
        self.ringback_id: str | None = None
        # The transferor's digits that may still become the takeback code: held back from
        # the target (SPEC §5.6), dropped on a takeback, relayed as soon as they cannot be one.
        self.pending: list[tuple[str, int]] = []
        self.state = "starting"  # → ringing → talking → done

    # -- which events are ours (called by the owner task) -------------------------------------

    def wants_gone(self, role: str) -> bool:
        return role in (self.transferor, self.transferee, Role.TRANSFER_TARGET)

    def deliver(self, item: dict[str, Any] | LegGone) -> None:
        self.queue.put_nowait(item)

    def wants(self, event: dict[str, Any]) -> bool:
        kind = event.get("type")
        channel = event.get("channel")
        channel_id = channel.get("id") if isinstance(channel, dict) else None
        if kind == "Dial":
            peer = event.get("peer")
            return isinstance(peer, dict) and peer.get("id") == self.target_id
        if channel_id == self.target_id:
            return True
        legs = self.call.legs
        transferor_id = legs[self.transferor].channel_id
        transferee_id = legs[self.transferee].channel_id
        if kind == "ChannelDtmfReceived":
            return channel_id in (transferor_id, transferee_id)  # the held party's are dropped
        if kind in ("StasisEnd", "ChannelDestroyed"):
            return channel_id in (transferor_id, transferee_id)
        return False

    # -- the child task -----------------------------------------------------------------------

    async def run(self) -> str:
        call = self.call
        gateway = call.engine.gateway_or_raise()
        loop = asyncio.get_running_loop()
        try:
            await self._begin()
        except (AriError, AriUnavailable) as exc:
            logger.warning("call %s: attended transfer could not start: %s", call.id, exc)
            await self._hang_up_target()
            await self._take_back()
            return "failed"
        deadline: float | None = loop.time() + self.request.timeout
        while True:
            timeout = None if deadline is None else max(deadline - loop.time(), 0.0)
            try:
                event = await asyncio.wait_for(self.queue.get(), timeout)
            except TimeoutError:
                logger.info("call %s: transfer target did not answer in time", call.id)
                await self.call.safely(gateway.hangup(self.target_id, "no_answer"))
                self.target_gone = True
                return await self._target_failed("no_answer")
            outcome = await self._handle(event)
            if outcome is not None:
                return outcome
            if self.state == "talking":
                deadline = None

    async def _begin(self) -> None:
        call = self.call
        gateway = call.engine.gateway_or_raise()
        bridge_id = call.bridge_id
        transferor = call.legs[self.transferor].channel_id
        if bridge_id is None:
            raise AriError(409, "the call has no bridge")
        await call.leaving("stopped for a transfer")
        await gateway.remove_from_bridge(bridge_id, transferor)
        await gateway.start_bridge_moh(bridge_id, self.request.moh_class)
        self.ringback_id = await gateway.play_on_channel(
            transferor, self.request.ringback or RINGBACK
        )
        call.playbacks.started(self.ringback_id, self.transferor)
        endpoint = f"Local/{self.request.extension}@{call.engine.settings.transfer_context}/n"
        created = await gateway.create_channel(
            endpoint,
            app_args=f"transfer,{call.id}",
            channel_id=self.target_id,
            originator=transferor,
        )
        self.target_snapshot = created
        await call.dial_with_retry(self.target_id, transferor, int(self.request.timeout))
        self.state = "ringing"
        logger.info(
            "call %s: attended transfer of %s to %s (%s)",
            call.id,
            self.transferee,
            self.request.extension,
            endpoint,
        )

    async def _handle(self, event: dict[str, Any] | LegGone) -> str | None:
        if isinstance(event, LegGone):
            if event.role == Role.TRANSFER_TARGET:
                return await self._on_target({"type": "ChannelDestroyed"}, {})
            if event.role == self.transferor:
                return await self._transferor_left()
            if event.role == self.transferee:
                return await self._transferee_left()
            return None
        kind = event.get("type")
        raw = event.get("channel")
        channel: dict[str, Any] = raw if isinstance(raw, dict) else {}
        channel_id = channel.get("id")
        legs = self.call.legs
        if kind == "ChannelDtmfReceived":
            digit = str(event.get("digit", ""))
            if (
                channel_id == legs[self.transferor].channel_id
                and len(digit) == 1
                and self._takeback_digit(digit, duration_of(event.get("duration_ms")))
            ):
                logger.info("call %s: takeback by %s", self.call.id, self.transferor)
                await self._hang_up_target()
                await self._take_back()
                return "taken_back"
            return None
        if kind == "Dial":
            status = event.get("dialstatus")
            if status == "ANSWER":
                self.target_answered = True
                return await self._maybe_answered()
            if status in TARGET_FAILED:
                self.target_gone = status != "CANCEL"
                await self._hang_up_target()
                return await self._target_failed(str(status))
            return None
        if channel_id == self.target_id:
            return await self._on_target(event, channel)
        role = self._role_of(channel_id)
        if role == self.transferor:
            return await self._transferor_left()
        if role == self.transferee:
            return await self._transferee_left()
        return None

    async def _on_target(self, event: dict[str, Any], channel: dict[str, Any]) -> str | None:
        kind = event.get("type")
        if kind in ("StasisStart", "ChannelStateChange"):
            self.target_snapshot = channel
            self.target_in_stasis = self.target_in_stasis or kind == "StasisStart"
            self.target_answered = self.target_answered or channel.get("state") == "Up"
            return await self._maybe_answered()
        if kind in ("StasisEnd", "ChannelDestroyed"):
            self.target_gone = True
            if self.state == "talking" and not self.transferor_gone:
                # The target hung up on the transferor: back to the transferee.
                await self._take_back()
                return "target_hung_up"
            return await self._target_failed("hangup")
        return None

    def _takeback_digit(self, digit: str, duration_ms: int) -> bool:
        """True when the transferor's digits end with the takeback code. What can no longer
        be part of it goes on to whom the transferor talks to (nobody while it rings)."""
        takeback = self.request.takeback_dtmf
        pending = self.pending
        pending.append((digit, duration_ms))
        while pending and not takeback.startswith("".join(d for d, _ in pending)):
            self.call.relay_digits(self.transferor, (pending.pop(0),))
        if pending and len(pending) == len(takeback):
            pending.clear()
            return True
        return False

    def _role_of(self, channel_id: str | None) -> str | None:
        for role in (self.transferor, self.transferee):
            if self.call.legs[role].channel_id == channel_id:
                return role
        return None

    def _target_ready(self) -> bool:
        return self.target_answered and self.target_in_stasis and not self.target_gone

    async def _maybe_answered(self) -> str | None:
        if not self._target_ready() or self.state != "ringing":
            return None
        gateway = self.call.engine.gateway_or_raise()
        if self.transferor_gone:
            await self._connect_transferee()
            return "completed"
        await self._stop_ringback()
        bridge_id = f"mf-{uuid.uuid4().hex}"
        self.call.track_bridge(bridge_id)
        try:
            await gateway.create_bridge("mixing,dtmf_events", bridge_id)
            self.consult_bridge = bridge_id
            # The transferor's digits are absorbed: the takeback code never reaches the
            # target (unless its metaflows pass digits through, SPEC §5.6).
            metaflows = self.call.legs[self.transferor].metaflows
            passthrough = metaflows is not None and metaflows.dtmf_passthrough
            await self.call.join_bridge(
                self.consult_bridge,
                [self.transferor, Role.TRANSFER_TARGET],
                absorb=() if passthrough else (self.transferor,),
            )
        except Gone:
            return None  # someone left meanwhile: their event follows
        except (AriError, AriUnavailable) as exc:
            # Refused or unreachable: no consultation, so the attempt fails as when the target
            # fails; a bridge whose creation timed out may still appear, so it goes later.
            logger.warning("call %s: cannot set the consultation up: %s", self.call.id, exc)
            if isinstance(exc, AriUnavailable):
                self.call.engine.destroy_bridge_later(bridge_id)
            await self._hang_up_target()
            return await self._target_failed("refused")
        self.state = "talking"
        logger.info("call %s: transfer target answered; consulting", self.call.id)
        return None

    async def _transferor_left(self) -> str | None:
        if self.transferor_gone:
            return None  # its StasisEnd, then its ChannelDestroyed
        self.transferor_gone = True
        await self.call.ask(lambda: self.call.mark_gone(self.transferor))
        await self._stop_ringback()
        if self.state == "talking" or self._target_ready():
            # Answered: talking, or the consultation was being set up when the transferor
            # left (adding it failed), with the target perhaps already in the consult bridge.
            await self._connect_transferee()
            return "completed"
        logger.info("call %s: transferor left; the target keeps ringing", self.call.id)
        return None

    async def _transferee_left(self) -> str:
        """The held party hung up: a consultation in progress becomes the call."""
        call = self.call
        if self.state == "talking" and self.consult_bridge is not None:
            await call.ask(lambda: call.mark_gone(self.transferee))
            old_bridge = call.bridge_id
            await self._adopt_target(self.transferee, self.consult_bridge)
            if old_bridge is not None:
                await self.call.safely(call.engine.gateway_or_raise().destroy_bridge(old_bridge))
            logger.info("call %s: transferee left; transferor and target go on", call.id)
            return "transferee_left"
        await self._stop_ringback()
        await self._hang_up_target()
        await self.finished()
        call.submit(LegGone(self.transferee))  # the call ends as when a party leaves
        return "transferee_left"

    async def _target_failed(self, why: str) -> str:
        if self.transferor_gone:
            # Nobody to return to: the transferee is alone on hold.
            logger.info(
                "call %s: transfer target failed (%s) after the transferor left", self.call.id, why
            )
            await self.finished()
            await self.call.safely(
                self.call.engine.gateway_or_raise().hangup(
                    self.call.legs[self.transferee].channel_id
                )
            )
            return "failed"
        logger.info("call %s: transfer target failed (%s); taking back", self.call.id, why)
        await self._take_back()
        return "no_answer" if why == "no_answer" else "failed"

    # -- steps ---------------------------------------------------------------------------------

    def target_leg(self) -> Leg:
        """The target as a leg of the call, not yet a party (added when the transfer starts)."""
        return Leg(Role.TRANSFER_TARGET, self.target_id, party=False)

    async def _adopt_target(self, role: str, bridge_id: str | None) -> None:
        """The target takes ``role``'s place in the call; the transfer is over."""

        def adopt() -> None:
            call = self.call
            leg = call.legs.get(Role.TRANSFER_TARGET) or self.target_leg()
            leg.name = str(self.target_snapshot.get("name", ""))
            leg.state = "Up"
            leg.answered = leg.in_stasis = True
            call.replace_leg(role, leg, resolve=True)
            call.bridge_id = bridge_id
            self._detach(adopted_as=role)

        await self.call.ask(adopt)

    def _detach(self, adopted_as: str | None = None) -> None:
        """In the call's task: the call no longer routes events to this transfer. Those it
        took but did not handle go back to the call (parties that hung up at the same time)."""
        call = self.call
        unhandled: list[dict[str, Any] | LegGone] = []
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if isinstance(item, LegGone):
                if item.role == adopted_as:
                    continue  # the leg the target replaced: its departure was handled
                if item.role == Role.TRANSFER_TARGET:
                    if adopted_as is None:
                        continue  # the target is dropped with the transfer
                    item = LegGone(adopted_as)
            unhandled.append(item)
        call.remove_interceptor(self, unhandled)
        if call.feature_state.get("transfer") is self:
            del call.feature_state["transfer"]
        call.drop_leg(Role.TRANSFER_TARGET)

    async def finished(self) -> None:
        await self.call.ask(self._detach)

    async def _connect_transferee(self) -> None:
        """Transferee and target talk; the target takes the transferor's place in the call."""
        call = self.call
        gateway = call.engine.gateway_or_raise()
        if self.consult_bridge is not None:
            await self.call.safely(gateway.destroy_bridge(self.consult_bridge))
        if call.bridge_id is not None:
            await self.call.safely(gateway.stop_bridge_moh(call.bridge_id))
            await self.call.safely(call.join_bridge(call.bridge_id, [Role.TRANSFER_TARGET]))
        await self._adopt_target(self.transferor, call.bridge_id)
        logger.info("call %s: transfer completed", call.id)

    async def _take_back(self) -> None:
        """The transferor returns to the transferee; nothing of the attempt is left."""
        call = self.call
        gateway = call.engine.gateway_or_raise()
        await self._stop_ringback()
        if self.consult_bridge is not None:
            await self.call.safely(gateway.destroy_bridge(self.consult_bridge))
            self.consult_bridge = None
        if call.bridge_id is not None:
            await self.call.safely(gateway.stop_bridge_moh(call.bridge_id))
            await self.call.safely(call.join_bridge(call.bridge_id, [self.transferor]))
        await self.finished()

    async def _hang_up_target(self) -> None:
        if not self.target_gone:
            self.target_gone = True
            await self.call.safely(self.call.engine.gateway_or_raise().hangup(self.target_id))

    async def _stop_ringback(self) -> None:
        if self.ringback_id is not None:
            playback, self.ringback_id = self.ringback_id, None
            await self.call.safely(self.call.engine.gateway_or_raise().stop_playback(playback))
            self.call.playbacks.finished(playback)
