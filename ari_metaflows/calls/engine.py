"""All calls of this instance: routing events to them, resync after reconnects, API access.

``route`` runs on the websocket reader: it only looks up the call an event belongs to and puts
the event in that call's queue (or starts a call). No locks: every call's state belongs to its
own task; the engine's maps are only touched from the event loop.

Resync policy after a reconnection (SPEC §2, §8): calls whose channels are gone are ended;
channels in our application that no call knows (say, after this service restarted) are adopted
when two of them share a bridge (features keep working); the others are offered to
``adopt_lone`` (in a cluster, the park feature adopts the parked calls of a previous holder)
and otherwise hung up, since nothing would ever take them out of the application.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ..ari.gateway import AriGateway
from ..audit import AuditTrail, MetaflowEvent
from ..errors import AriError, AriUnavailable, AsteriskUnavailable, NotFound
from ..metaflows.documents import Node
from ..metaflows.resolver import LegIdentity, MetaflowResolver
from ..metrics import Metrics
from .call import CALLEE, CALLER, Call
from .collector import Match
from .feature import FeatureRegistry
from .identity import identity_of
from .leg import Leg, Phase, Role
from .messages import Adopted, LegGone, Refresh, RunNode
from .relay import RelayGate
from .settings import CallTimeouts, EngineSettings

__all__ = ["CallEngine", "CallTimeouts", "EngineSettings"]

AdoptLone = Callable[[list[tuple[dict[str, Any], str | None]]], Awaitable[set[str]]]

logger = logging.getLogger(__name__)

# The event types the call core acts on (features add theirs: FeatureRegistry.by_event). The
# app asks Asterisk for these only (ARI eventFilter); an interceptor (an attended transfer)
# sees the same types.
CORE_EVENTS = frozenset(
    {
        "StasisStart",
        "StasisEnd",
        "ChannelDestroyed",
        "ChannelStateChange",
        "Dial",
        "ChannelDtmfReceived",
        "BridgeDestroyed",
        "ChannelEnteredBridge",  # which bridge a leg is in: where its relayed digits go
        "ChannelLeftBridge",
        "PlaybackFinished",
        "ApplicationReplaced",
    }
)


class CallEngine:
    def __init__(
        self,
        settings: EngineSettings,
        resolver: MetaflowResolver,
        *,
        features: FeatureRegistry,
        metrics: Metrics | None = None,
        audit: AuditTrail | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.audit = audit
        self.resolver = resolver
        self.features = features
        self.default_account = settings.default_account
        self.asterisk = settings.asterisk
        # Called with a call after its task handled something (the cluster's live state marks
        # it for the write-behind); None on a single instance.
        self.live_mark: Callable[[Call], None] | None = None
        self.relay_gate = RelayGate()  # relay requests in flight, all calls together
        # Offered, at each resync, the channels in our app that no call knows and that share
        # no bridge (with their bridge); answers those it adopted (the cluster's park feature:
        # parked calls of a previous holder). The others are hung up.
        self.adopt_lone: AdoptLone | None = None
        self.gateway: AriGateway | None = None
        self.calls: dict[str, Call] = {}
        self._by_channel: dict[str, Call] = {}
        self._by_bridge: dict[str, Call] = {}
        self._stray: set[asyncio.Task[Any]] = set()
        self._doomed: set[str] = set()  # originated callees whose request timed out
        self.flows_started = 0
        self.history: deque[dict[str, Any]] = deque(maxlen=1000)  # recent matched codes
        resolver.add_invalidation_listener(self._metaflows_changed)

    # -- bookkeeping -----------------------------------------------------------------------

    def gateway_or_raise(self) -> AriGateway:
        if self.gateway is None:
            raise AriUnavailable("not connected to Asterisk")
        return self.gateway

    def track_channel(self, channel_id: str, call: Call) -> None:
        self._by_channel[channel_id] = call

    def untrack_channel(self, channel_id: str) -> None:
        self._by_channel.pop(channel_id, None)

    def track_bridge(self, bridge_id: str, call: Call) -> None:
        self._by_bridge[bridge_id] = call

    def forget(self, call: Call) -> None:
        self.calls.pop(call.id, None)
        for leg in call.legs.values():
            if self._by_channel.get(leg.channel_id) is call:
                del self._by_channel[leg.channel_id]
        if call.bridge_id is not None and self._by_bridge.get(call.bridge_id) is call:
            del self._by_bridge[call.bridge_id]
        for bridge_id in [b for b, c in self._by_bridge.items() if c is call]:
            del self._by_bridge[bridge_id]

    def _start_task(self, call: Call, start: dict[str, Any] | None) -> None:
        self.calls[call.id] = call
        call.task = asyncio.create_task(call.run(start), name=f"call-{call.id}")

    # -- routing (on the websocket reader: never blocks) --------------------------------------

    def route(self, event: dict[str, Any]) -> None:
        metrics = self.metrics
        metrics.ari_events += 1
        kind = event.get("type")
        if not isinstance(kind, str):
            return
        if kind == "ChannelDtmfReceived":
            metrics.dtmf_events += 1
        if self._doomed:  # before its (ending) call sees it
            for key in ("channel", "peer"):  # its first event may be its Dial
                item = event.get(key)
                channel_id = item.get("id") if isinstance(item, dict) else None
                if channel_id in self._doomed:
                    self._doomed.discard(channel_id)
                    self._detached(self._hangup(channel_id))
                    return
        call = self._call_for(event)
        if call is not None:
            call.submit(event)
            return
        if kind == "StasisStart":
            self._stasis_start(event)

    def _call_for(self, event: dict[str, Any]) -> Call | None:
        for key in ("channel", "peer"):
            item = event.get(key)
            if isinstance(item, dict):
                call = self._by_channel.get(str(item.get("id")))
                if call is not None:
                    return call
        bridge = event.get("bridge")
        if isinstance(bridge, dict):
            call = self._by_bridge.get(str(bridge.get("id")))
            if call is not None:
                return call
        for key in ("playback", "recording"):
            item = event.get(key)
            if isinstance(item, dict):
                kind, _, target = str(item.get("target_uri", "")).partition(":")
                found = (self._by_bridge if kind == "bridge" else self._by_channel).get(target)
                if found is not None:
                    return found
        return None

    def _stasis_start(self, event: dict[str, Any]) -> None:
        channel = event.get("channel")
        args = event.get("args")
        if not isinstance(channel, dict) or not isinstance(channel.get("id"), str):
            logger.warning("ignoring a StasisStart without a channel")
            return
        if not isinstance(args, list):
            args = []
        if args[:1] == ["dial"] and len(args) >= 2 and isinstance(args[1], str) and args[1]:
            ring = self._ring_timeout(args[2] if len(args) > 2 else None)
            call = Call(self, channel["id"], args[1], ring)
            self.track_channel(channel["id"], call)
            self._start_task(call, event)
            return
        entry = (
            self.features.stasis_entries.get(args[0]) if args and isinstance(args[0], str) else None
        )
        if entry is not None:
            self._detached(entry(self, channel, args))
            return
        # A callee or a recorder (snoop) of a call that already ended, or a Stasis() we don't
        # understand. A recorder is never a new call.
        if args[:1] == [CALLEE] or args[:1] == [Role.RECORDER]:
            self._detached(self._hangup(channel["id"]))
        else:
            logger.warning(
                "channel %s entered the app with unknown arguments %s; sending it "
                "on in the dialplan",
                channel.get("name"),
                args,
            )
            self._detached(self._continue(channel["id"], "INVALIDARGS"))

    def _ring_timeout(self, raw: object) -> float:
        limits = self.settings.timeouts
        try:
            value = float(str(raw))
        except ValueError:
            return limits.ring_default
        if value <= 0:
            return limits.ring_default
        return min(value, limits.ring_max)

    def _detached(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._stray.add(task)
        task.add_done_callback(self._stray.discard)

    async def hangup(self, channel_id: str) -> None:
        """Hang up a channel no call owns (errors are logged)."""
        await self._hangup(channel_id)

    async def _hangup(self, channel_id: str) -> None:
        if self.gateway is not None:
            try:
                await self.gateway.hangup(channel_id)
            except (AriError, AriUnavailable) as exc:
                logger.debug("hangup of %s: %s", channel_id, exc)

    def hangup_when_seen(self, channel_id: str) -> None:
        """An originate that timed out may still complete in Asterisk and ring a phone for a
        call that has ended: hang the channel up at its first event, or once Asterisk has
        surely handled the request."""
        gateway = self.gateway
        if gateway is None:
            return
        self._doomed.add(channel_id)

        async def hangup() -> None:
            await asyncio.sleep(2 * gateway.timeouts.request)
            self._doomed.discard(channel_id)
            await self._hangup(channel_id)  # again even if seen: that hangup may have failed

        self._detached(hangup())

    def destroy_bridge_later(self, bridge_id: str) -> None:
        """Destroy a bridge whose creation timed out, after Asterisk has surely handled it."""
        gateway = self.gateway
        if gateway is None:
            return

        async def destroy() -> None:
            await asyncio.sleep(2 * gateway.timeouts.request)
            try:
                await gateway.destroy_bridge(bridge_id)
            except (AriError, AriUnavailable) as exc:
                logger.debug("late destroy of bridge %s: %s", bridge_id, exc)

        self._detached(destroy())

    async def identity_of_channel(
        self, gateway: AriGateway, channel: dict[str, Any]
    ) -> LegIdentity | None:
        """Who owns a channel no call knows yet (None when Asterisk cannot tell)."""

        async def read(name: str) -> str | None:
            return await gateway.get_variable(channel["id"], name)

        try:
            return await identity_of(channel, self.default_account, read)
        except (AriError, AriUnavailable):
            return None

    async def send_on(self, channel_id: str, status: str, variable: str) -> None:
        """Send a channel no call owns on in the dialplan, with ``variable`` set to ``status``."""
        await self._continue(channel_id, status, variable)

    async def _continue(
        self, channel_id: str, status: str, variable: str = "METAFLOWS_DIALSTATUS"
    ) -> None:
        if self.gateway is None:
            return
        try:
            await self.gateway.set_variable(channel_id, variable, status)
            await self.gateway.continue_in_dialplan(channel_id)
        except (AriError, AriUnavailable) as exc:
            logger.debug("continue of %s: %s", channel_id, exc)

    # -- reconnection ------------------------------------------------------------------------

    @property
    def event_types(self) -> frozenset[str]:
        """Every ARI event type the call core and the features act on."""
        return CORE_EVENTS | frozenset(self.features.by_event)

    async def on_connected(self, gateway: AriGateway, restarted: bool) -> None:
        self.gateway = gateway
        try:
            await gateway.set_event_filter(self.event_types)
        except (AriError, AriUnavailable, AttributeError) as exc:
            # An Asterisk without eventFilter (before 16.3) sends everything: still correct.
            logger.info("ARI event filter not set (%s); receiving every event type", exc)
        if restarted:
            for call in list(self.calls.values()):
                if call.task is not None:
                    call.task.cancel()
            if self.adopt_lone is not None:
                await self.adopt_lone([])  # nothing survived a restart of Asterisk
            return
        await self.resync(gateway)

    def on_disconnected(self) -> None:
        self.gateway = None

    async def resync(self, gateway: AriGateway) -> None:
        application = await gateway.application()
        live = {str(c) for c in application.get("channel_ids", [])}
        for call in list(self.calls.values()):
            for role, leg in call.legs.items():
                if leg.party and not leg.gone and leg.channel_id not in live:
                    call.submit(LegGone(role))
        unknown = self._unknown(live)
        if not unknown:
            if self.adopt_lone is not None:
                await self.adopt_lone([])
            return
        channels = {c["id"]: c for c in await gateway.channels() if c.get("id") in unknown}
        bridge_of: dict[str, str] = {}
        for bridge in await gateway.bridges():
            members = [m for m in bridge.get("channels", []) if m in channels]
            if len(members) == 2 and len(bridge.get("channels", [])) == 2:
                self._adopt(bridge["id"], [channels[m] for m in members])
                unknown -= set(members)
            elif len(bridge.get("channels", [])) == 1:
                bridge_of.update((m, bridge["id"]) for m in members)
        unknown = self._unknown(unknown)  # the far halves of the callees just adopted
        if self.adopt_lone is not None:
            lone = [(channels[c], bridge_of.get(c)) for c in sorted(unknown) if c in channels]
            unknown -= await self.adopt_lone(lone)
        for channel_id in unknown:
            if channel_id in channels:
                logger.warning(
                    "hanging up %s: in the app but no call knows it",
                    channels[channel_id].get("name"),
                )
                await self._hangup(channel_id)

    def _unknown(self, channel_ids: set[str]) -> set[str]:
        """The channels no call knows. An originated Local callee's far half ("<id>;2") is
        in the app too (Asterisk subscribes it), yet belongs to the call of its ";1"."""
        return {
            c
            for c in channel_ids
            if c not in self._by_channel and not (c.endswith(";2") and c[:-2] in self._by_channel)
        }

    def _adopt(self, bridge_id: str, snapshots: list[dict[str, Any]]) -> None:
        """Two of our channels bridged together: a call that survived our restart."""
        first, second = sorted(snapshots, key=lambda c: str(c.get("creationtime", "")))
        call = Call(self, first["id"], "", self.settings.timeouts.ring_default)
        call.legs[CALLER] = Leg(
            CALLER, first["id"], first.get("name", ""), "Up", in_stasis=True, bridge=bridge_id
        )
        call.legs[CALLEE] = Leg(
            CALLEE,
            second["id"],
            second.get("name", ""),
            "Up",
            in_stasis=True,
            answered=True,
            bridge=bridge_id,
        )
        call.bridge_id = bridge_id
        call.phase = Phase.CONNECTED
        for snapshot in (first, second):
            self.track_channel(snapshot["id"], call)
        self.track_bridge(bridge_id, call)
        self._start_task(call, None)
        call.submit(Adopted((first, second)))
        logger.info(
            "call %s: adopted after resync (%s ↔ %s)",
            call.id,
            first.get("name"),
            second.get("name"),
        )

    def adopt_lone_call(self, snapshot: dict[str, Any], bridge_id: str, role: str) -> Call:
        """A call of one party waiting alone in ``bridge_id`` (a parked call a previous holder
        left): its task starts at the loop's next turn, so the adopting feature sets its state
        first."""
        call = Call(self, snapshot["id"], "", self.settings.timeouts.ring_default)
        call.legs[role] = Leg(
            role,
            snapshot["id"],
            snapshot.get("name", ""),
            str(snapshot.get("state") or "Up"),
            in_stasis=True,
            answered=True,
            bridge=bridge_id,
        )
        call.bridge_id = bridge_id
        call.phase = Phase.CONNECTED
        self.track_channel(snapshot["id"], call)
        self.track_bridge(bridge_id, call)
        self._start_task(call, None)
        return call

    def audit_record(self, event: MetaflowEvent) -> None:
        if self.audit is not None:
            self.audit.record(event)

    def active_legs(self) -> int:
        return sum(
            1
            for call in self.calls.values()
            for leg in call.legs.values()
            if leg.party and not leg.gone
        )

    def record_match(self, call: Call, owner: str, match: Match) -> None:
        identity = call.legs[owner].identity
        self.history.append(
            {
                "time": time.time(),
                "call_id": call.id,
                "account_id": identity.account_id if identity else None,
                "owner": owner,
                "leg": match.leg,
                "collected": match.collected,
                "key": match.key,
                "kind": match.kind,
                "module": match.node.module,
                "captures": list(match.captures),
            }
        )

    # -- metaflows changes -------------------------------------------------------------------

    def _metaflows_changed(self, account: str | None) -> None:
        for call in self.calls.values():
            if any(
                leg.identity is not None and (account is None or leg.identity.account_id == account)
                for leg in call.legs.values()
            ):
                call.submit(Refresh(account))

    # -- the channels API --------------------------------------------------------------------

    def legs_of_account(self, account_id: str) -> list[dict[str, Any]]:
        found = []
        for call in self.calls.values():
            for role, leg in call.legs.items():
                if (
                    leg.party
                    and not leg.gone
                    and leg.identity
                    and leg.identity.account_id == account_id
                ):
                    found.append(call.describe(role))
        return found

    def leg(self, account_id: str, channel_id: str) -> tuple[Call, str]:
        """The call and role of a live party leg of the account. A callee still ringing has no
        owner yet (it is found on answer): it counts as its caller's account, so that the
        account can pick it up (``intercept``)."""
        call = self._by_channel.get(channel_id)
        if call is not None:
            for role, leg in call.legs.items():
                if leg.channel_id != channel_id or leg.gone:
                    continue
                identity = leg.identity
                if identity is None and role == CALLEE and call.phase is Phase.DIALING:
                    identity = call.legs[CALLER].identity
                if identity is not None and identity.account_id == account_id:
                    return call, role
        raise NotFound(f"no live channel {channel_id} in this account")

    def run_node(self, account_id: str, channel_id: str, node: Node) -> str:
        """Run a metaflow node on a live leg, as if its owner had pressed the code."""
        call, role = self.leg(account_id, channel_id)
        if self.gateway is None:
            raise AsteriskUnavailable("not connected to Asterisk")
        call.submit(RunNode(node, role))
        return call.id

    async def close(self) -> None:
        """Stop tracking calls (they continue in Asterisk; a restart adopts them)."""
        tasks = [c.task for c in self.calls.values() if c.task is not None]
        tasks += list(self._stray)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
