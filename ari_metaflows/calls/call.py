"""One call in dial mode: its legs, bridge, collectors and the task that owns them.

Every event of the call goes through ``submit`` into the call's queue and is handled in order
by its one task, which also owns the call's timers (ring timeout, collector deadlines). Metaflow
flows run as child tasks so a long module never holds up the call's events; they are cancelled
when the call ends. Asterisk facts this relies on are in docs/asterisk-facts.md: "answered"
means ``Dial ANSWER`` or state ``Up`` (a Local callee enters Stasis before it answers).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..ari.gateway import AriError, AriUnavailable, Gone
from ..audit import MetaflowEvent
from ..backoff import Backoff, Delays
from ..errors import DatastoreUnavailable
from ..metaflows.documents import EffectiveMetaflows, Node
from ..metaflows.resolver import LegIdentity
from ..metrics import DISPATCH, Dispatch
from ..modules import REGISTRY, ModuleContext, ModuleFailed, Playbacks, run_flow
from .collector import Collector, Match, NoMatch, new_collector
from .identity import identity_of
from .mailbox import Mailbox
from .parking import SlotUnavailable, dial_string_of
from .recording import CallRecorder, RecordingRefused
from .transfer import EXTENSION_RE, AttendedTransfer, TransferRequest

if TYPE_CHECKING:
    from .engine import CallEngine

logger = logging.getLogger(__name__)

CALLER, CALLEE = "caller", "callee"
FAILED_DIAL = {"BUSY", "NOANSWER", "CHANUNAVAIL", "CONGESTION", "CANCEL"}
_CAUSE_STATUS = {17: "BUSY", 18: "NOANSWER", 19: "NOANSWER", 34: "CONGESTION"}
BRIDGE_TYPES = "mixing,dtmf_events"  # without dtmf_events, SIP media bypasses Asterisk
DIAL_ATTEMPTS = 5
_TICK: dict[str, Any] = {"type": "_tick"}  # queued by the call's timer
METAFLOW_RETRY = Backoff(initial=1.0, maximum=30.0)  # before resolving metaflows again


@dataclass(frozen=True)
class CallTimeouts:
    """Ring timeout when ``Stasis(…,dial,…)`` gives none, and the most we ever ring."""

    ring_default: float = 60.0
    ring_max: float = 600.0


@dataclass
class Leg:
    role: str
    channel_id: str
    name: str = ""
    state: str = "Down"
    identity: LegIdentity | None = None
    metaflows: EffectiveMetaflows | None = None
    gone: bool = False
    answered: bool = False
    in_stasis: bool = False
    released: bool = False  # sent on into the dialplan by us: not ours to hang up


@dataclass(frozen=True)
class Hold:
    holder: str  # the role that pressed hold (out of the bridge, hearing silence)
    unhold_key: str


@dataclass
class Parked:
    account_id: str
    slot: str
    role: str  # the parked party
    parker: str  # the parker's dial string, for the timeout's ring-back
    deadline: float  # loop time
    since: float = field(default_factory=time.time)
    timeout: float = 120.0


@dataclass
class Call:
    engine: CallEngine
    id: str
    dialstring: str
    ring_timeout: float
    legs: dict[str, Leg] = field(default_factory=dict)
    bridge_id: str | None = None
    phase: str = "dialing"  # dialing → connected → ended
    collectors: dict[str, Collector] = field(default_factory=dict)
    playbacks: Playbacks = field(default_factory=Playbacks)
    queue: Mailbox[dict[str, Any]] = field(default_factory=Mailbox)
    children: set[asyncio.Task[Any]] = field(default_factory=set)
    ring_deadline: float | None = None
    task: asyncio.Task[None] | None = None
    recorder: CallRecorder = field(init=False)
    transfer: AttendedTransfer | None = None
    held: Hold | None = None
    parked: Parked | None = None
    hangup_after: dict[str, str] = field(default_factory=dict)  # playback id → channel id
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)  # see _arm_timer
    metaflow_retry: asyncio.TimerHandle | None = field(default=None, repr=False)
    metaflow_backoff: Delays | None = field(default=None, repr=False)  # made when needed

    def __post_init__(self) -> None:
        self.recorder = CallRecorder(self.id, self.engine.recordings)

    def submit(self, event: dict[str, Any]) -> None:
        self.queue.put(event)

    # -- the owner task ---------------------------------------------------------------------

    async def run(self, start: dict[str, Any] | None) -> None:
        loop = asyncio.get_running_loop()
        queue = self.queue
        try:
            if start is not None:
                await self._start(start)
                start = None  # this frame lives as long as the call: keep no event in it
                self._arm_timer(loop.time())
            while self.phase != "ended":
                # A queued event is taken without suspending: a burst costs no wake-up.
                event = queue.get_nowait() if len(queue) else await queue.get()
                if event is not _TICK:
                    await self._handle(event)
                del event  # an idle call holds no parsed event (~5 KiB of JSON per leg)
                now = loop.time()
                await self._fire_timers(now)
                self._arm_timer(now)
        except asyncio.CancelledError:
            self._cancel_children()
            raise
        except Exception:
            logger.exception("call %s: failed; forgetting it", self.id)
            if self.phase == "dialing":
                await self._fail("CONGESTION")  # a caller must never stay ringing in Stasis
        finally:
            self.phase = "ended"
            self._cancel_children()
            if self.metaflow_retry is not None:
                self.metaflow_retry.cancel()
            if self.timer is not None:
                self.timer.cancel()
            self.engine.forget(self)

    def _arm_timer(self, now: float) -> None:
        """Keep one loop timer at or before the call's earliest deadline. Lazy: a deadline that
        moves later (every digit restarts the inter-digit timer) keeps the timer, which then
        fires early, finds nothing due and is armed again; so a DTMF burst costs no timer per
        event. When it fires, the timer only queues a tick: timers are handled in order with
        the call's events, by its task."""
        deadline = self._next_deadline()
        if deadline is None or deadline <= now:
            return  # nothing to wait for (a passed deadline was handled or no longer applies)
        timer = self.timer
        if timer is not None:
            if timer.when() <= deadline:
                return
            timer.cancel()
        self.timer = asyncio.get_running_loop().call_at(deadline, self._timer_due)

    def _timer_due(self) -> None:
        self.timer = None
        self.queue.put(_TICK)

    def _cancel_children(self) -> None:
        for child in list(self.children):
            child.cancel()

    def _next_deadline(self) -> float | None:
        deadlines = [c.deadline for c in self.collectors.values() if c.deadline is not None]
        if self.ring_deadline is not None:
            deadlines.append(self.ring_deadline)
        if self.parked is not None:
            deadlines.append(self.parked.deadline)
        return min(deadlines) if deadlines else None

    async def _fire_timers(self, now: float) -> None:
        if self.parked is not None and now >= self.parked.deadline and self.phase == "parked":
            await self._park_timed_out()
            return
        if self.ring_deadline is not None and now >= self.ring_deadline and self.phase == "dialing":
            self.ring_deadline = None
            logger.info("call %s: no answer within %.0f s", self.id, self.ring_timeout)
            callee = self.legs.get(CALLEE)
            if callee is not None:
                await self.safely(
                    self.engine.gateway_or_raise().hangup(callee.channel_id, "no_answer")
                )
            await self._fail("NOANSWER")
            return
        for owner, collector in self.collectors.items():
            outcome = collector.on_timeout(now)
            if outcome is not None:
                self._outcome(owner, outcome)

    # -- dial mode --------------------------------------------------------------------------

    async def _start(self, event: dict[str, Any]) -> None:
        snapshot = event["channel"]
        caller = Leg(CALLER, snapshot["id"], snapshot.get("name", ""), snapshot.get("state", ""))
        caller.in_stasis = True
        self.legs[CALLER] = caller
        gateway = self.engine.gateway_or_raise()
        callee_id = f"mf-{uuid.uuid4().hex}"
        self.legs[CALLEE] = Leg(CALLEE, callee_id)
        self.engine.track_channel(callee_id, self)
        step = "create"
        try:
            created = await gateway.create_channel(
                self.dialstring,
                app_args=f"{CALLEE},{self.id}",
                channel_id=callee_id,
                originator=caller.channel_id,
            )
            self.legs[CALLEE].name = created.get("name", "")
            step = "dial"
            await self.dial_with_retry(callee_id, caller.channel_id)
        except Gone:
            await self._end()
            return
        except AriError as exc:
            logger.info("call %s: cannot %s %s: %s", self.id, step, self.dialstring, exc.message)
            self.legs[CALLEE].gone = True
            await self._fail("CHANUNAVAIL")
            return
        except AriUnavailable as exc:
            # Asterisk overloaded or unreachable: the caller must not stay stranded in Stasis.
            logger.warning("call %s: cannot %s %s: %s", self.id, step, self.dialstring, exc)
            await self._fail("CONGESTION")
            return
        self.ring_deadline = asyncio.get_running_loop().time() + self.ring_timeout
        if caller.state != "Up":
            await self.safely(gateway.ring(caller.channel_id))
        caller.identity, caller.metaflows = await self._owner_of(snapshot)
        logger.info("call %s: %s → %s", self.id, caller.name, self.dialstring)

    async def dial_with_retry(
        self, channel_id: str, caller_id: str, timeout: int | None = None
    ) -> None:
        """Asterisk 22 sometimes answers 409 "not in Stasis" to a dial right after the create
        (the new channel's Stasis control is not ready yet): try again briefly."""
        gateway = self.engine.gateway_or_raise()
        for attempt in range(DIAL_ATTEMPTS):
            try:
                await gateway.dial(channel_id, caller=caller_id, timeout=timeout)
                return
            except AriError as exc:
                if exc.status != 409 or attempt == DIAL_ATTEMPTS - 1 or isinstance(exc, Gone):
                    raise
                await asyncio.sleep(0.02 * (attempt + 1))

    async def _owner_of(
        self, snapshot: dict[str, Any]
    ) -> tuple[LegIdentity | None, EffectiveMetaflows | None]:
        gateway = self.engine.gateway_or_raise()

        async def read(name: str) -> str | None:
            return await gateway.get_variable(snapshot["id"], name)

        try:
            identity = await identity_of(snapshot, self.engine.default_account, read)
        except (AriError, AriUnavailable) as exc:
            # Only without channelvars in ari.conf are variables read one by one.
            logger.warning(
                "call %s: cannot read the owner of %s (%s): no metaflows on this leg",
                self.id,
                snapshot.get("name"),
                exc,
            )
            return None, None
        if identity is None:
            return None, None
        try:
            return identity, await self.engine.resolver.resolve(identity)
        except DatastoreUnavailable:
            logger.warning(
                "call %s: metaflows of %s unavailable (database down); asking again later",
                self.id,
                snapshot.get("name"),
            )
            self._retry_metaflows_later(identity.account_id)
            return identity, None

    def _retry_metaflows_later(self, account: str) -> None:
        """The database was away when a leg's metaflows were needed: ask again with capped
        backoff, so the leg does not stay without features for the rest of the call."""
        if self.metaflow_retry is not None or self.phase == "ended":
            return
        if self.metaflow_backoff is None:
            self.metaflow_backoff = METAFLOW_RETRY.delays()

        def due() -> None:
            self.metaflow_retry = None
            self.submit({"type": "_refresh", "account": account})

        self.metaflow_retry = asyncio.get_running_loop().call_later(
            self.metaflow_backoff.next_delay(), due
        )

    async def _answered(self, snapshot: dict[str, Any]) -> None:
        """Connect once the callee has answered *and* is in Stasis (a SIP callee's Dial ANSWER
        comes before its StasisStart; a Local callee's StasisStart before its answer)."""
        callee_leg = self.legs[CALLEE]
        if self.phase != "dialing" or not (callee_leg.answered and callee_leg.in_stasis):
            return
        self.ring_deadline = None
        gateway = self.engine.gateway_or_raise()
        caller, callee = self.legs[CALLER], self.legs[CALLEE]
        callee.state = "Up"
        step = "answer the caller"
        try:
            if caller.state != "Up":
                await gateway.answer(caller.channel_id)
                caller.state = "Up"
            step = "bridge the call"
            bridge_id = f"mf-{self.id}"
            self.engine.track_bridge(bridge_id, self)
            self.bridge_id = bridge_id  # set first: a create that timed out is still cleaned up
            await gateway.create_bridge(BRIDGE_TYPES, bridge_id)
            await gateway.add_to_bridge(bridge_id, [caller.channel_id, callee.channel_id])
        except Gone:
            return  # a leg left meanwhile; its hangup event ends the call
        except (AriError, AriUnavailable) as exc:
            # Asterisk refused or is overloaded: like a Dial() that could not connect, the
            # callee is hung up and the caller goes on in the dialplan, never left in Stasis.
            logger.warning("call %s: cannot %s: %s", self.id, step, exc)
            await self._fail("CONGESTION")
            if isinstance(exc, AriUnavailable) and self.bridge_id is not None:
                # A create that timed out here may still complete in Asterisk after the
                # destroy in _fail: destroy it once more when that can no longer happen.
                self.engine.destroy_bridge_later(self.bridge_id)
            return
        self.phase = "connected"
        callee.identity, callee.metaflows = await self._owner_of(snapshot)
        self._build_collectors()
        logger.info("call %s: connected (%s ↔ %s)", self.id, caller.name, callee.name)

    async def _fail(self, status: str) -> None:
        """The callee failed: the caller goes on in the dialplan, as after Dial()."""
        caller = self.legs.get(CALLER)
        callee = self.legs.get(CALLEE)
        logger.info("call %s: callee failed (%s)", self.id, status)
        gateway = self.engine.gateway
        if gateway is not None and callee is not None and not callee.gone:
            await self.safely(gateway.hangup(callee.channel_id))
        if gateway is not None and caller is not None and not caller.gone:
            await self.safely(
                gateway.set_variable(caller.channel_id, "METAFLOWS_DIALSTATUS", status)
            )
            await self.safely(gateway.continue_in_dialplan(caller.channel_id))
        await self._end()

    async def _leg_gone(self, role: str, cause: int | None) -> None:
        leg = self.legs.get(role)
        if leg is None or leg.gone:
            return
        leg.gone = True
        if self.phase == "dialing" and role == CALLEE:
            await self._fail(_CAUSE_STATUS.get(cause or 0, "CHANUNAVAIL"))
            return
        if self.phase == "parked" and self.parked is not None and role != self.parked.role:
            return  # the parker leaves after hearing the slot; the parked party waits
        self._unpark_slot()
        other = self.legs.get(CALLEE if role == CALLER else CALLER)
        gateway = self.engine.gateway
        if gateway is not None and other is not None and not (other.gone or other.released):
            await self.safely(gateway.hangup(other.channel_id))
        await self._end()

    async def _end(self) -> None:
        if self.phase == "ended":
            return
        self.phase = "ended"
        self._unpark_slot()
        gateway = self.engine.gateway
        await self.recorder.stop(gateway, "ended with the call")
        if gateway is not None and self.bridge_id is not None:
            await self.safely(gateway.destroy_bridge(self.bridge_id))
        logger.info("call %s: ended", self.id)

    async def safely(self, action: Any) -> None:
        """ARI requests racing a hangup: a gone object or an unreachable Asterisk is logged."""
        try:
            await action
        except (Gone, AriUnavailable) as exc:
            logger.debug("call %s: %s", self.id, exc)
        except AriError as exc:
            logger.info("call %s: Asterisk refused: %s", self.id, exc)

    # -- events -----------------------------------------------------------------------------

    def _role_of(self, channel_id: str | None) -> str | None:
        return next((r for r, leg in self.legs.items() if leg.channel_id == channel_id), None)

    async def _handle(self, event: dict[str, Any]) -> None:
        if self.transfer is not None and self.transfer.wants(event):
            self.transfer.queue.put_nowait(event)
            return
        kind = event.get("type")
        raw = event.get("channel")
        channel: dict[str, Any] = raw if isinstance(raw, dict) else {}
        role = self._role_of(channel.get("id")) if channel else None
        if kind == "ChannelDtmfReceived" and role is not None:
            self.engine.metrics.dtmf_handled += 1
            self._digit(role, str(event.get("digit", "")))
        elif kind == "Dial":
            peer = event.get("peer") or {}
            if self._role_of(peer.get("id")) == CALLEE:
                status = event.get("dialstatus")
                if status == "ANSWER":
                    self.legs[CALLEE].answered = True
                    await self._answered(peer)
                elif status in FAILED_DIAL and self.phase == "dialing":
                    self.legs[CALLEE].gone = status != "CANCEL"
                    await self._fail(status)
        elif kind in ("ChannelStateChange", "StasisStart") and role is not None:
            leg = self.legs[role]
            leg.state = channel.get("state", "")
            leg.in_stasis = leg.in_stasis or kind == "StasisStart"
            if role == CALLEE:
                leg.answered = leg.answered or leg.state == "Up"
                await self._answered(channel)
        elif kind in ("StasisEnd", "ChannelDestroyed") and role is not None:
            await self._leg_gone(role, event.get("cause"))
        elif kind == "_gone" and event.get("role") in self.legs:
            await self._leg_gone(event["role"], None)
        elif kind in ("RecordingFinished", "RecordingFailed"):
            self.recorder.on_event(event)
        elif kind == "_resolve":
            role = event["role"]
            if role in self.legs:
                leg = self.legs[role]
                leg.identity, leg.metaflows = await self._owner_of(event["snapshot"])
                self._build_collectors()
        elif kind == "PlaybackFinished":
            playback_id = str((event.get("playback") or {}).get("id", ""))
            self.playbacks.finished(playback_id)
            then_hang_up = self.hangup_after.pop(playback_id, None)
            gateway = self.engine.gateway
            if then_hang_up is not None and gateway is not None:
                await self.safely(gateway.hangup(then_hang_up))
        elif kind == "_unpark":
            await self._retrieved(event["snapshot"])
        elif kind == "_parked_to":
            await self._send_parked_on(event["context"], event["extension"], event["priority"])
        elif kind == "BridgeDestroyed" and self.phase == "connected":
            if (event.get("bridge") or {}).get("id") == self.bridge_id:
                self.bridge_id = None
        elif kind == "_refresh":
            await self._refresh(event.get("account"))
        elif kind == "_adopted":
            for role, snapshot in zip((CALLER, CALLEE), event["snapshots"], strict=True):
                leg = self.legs[role]
                leg.identity, leg.metaflows = await self._owner_of(snapshot)
            self._build_collectors()
        elif kind == "_run":
            role = event["role"]
            audit = self._audit_event(role, role, "api", "running")
            self._launch(event["node"], role, {"dtmf_leg": role}, audit)

    # -- DTMF and metaflows -----------------------------------------------------------------

    def _build_collectors(self) -> None:
        roles = frozenset(self.legs)
        self.collectors = {}
        for role, leg in self.legs.items():
            if leg.metaflows is not None and not leg.metaflows.is_empty:
                self.collectors[role] = new_collector(leg.metaflows, role, roles - {role})

    def _digit(self, role: str, digit: str) -> None:
        if self.phase != "connected" or len(digit) != 1:
            return
        held = self.held
        if held is not None and role == held.holder and digit == held.unhold_key:
            collector = self.collectors.get(role)
            if collector is None or not collector.armed:
                logger.info("call %s: %s pressed the unhold key", self.id, role)
                audit = self._audit_event(role, role, "dtmf", "running")
                if audit is not None:
                    audit.collected = digit
                    audit.matched_key = digit
                    audit.match_kind = "unhold_key"
                self._launch(Node("resume", {}), role, {"dtmf_leg": role}, audit)
                return
        now = asyncio.get_running_loop().time()
        for owner, collector in list(self.collectors.items()):
            outcome = collector.on_digit(role, digit, now)
            if outcome is not None:
                self._outcome(owner, outcome)

    def _outcome(self, owner: str, outcome: Match | NoMatch) -> None:
        if isinstance(outcome, NoMatch):
            logger.info(
                "call %s: %s pressed %s: %s",
                self.id,
                outcome.leg,
                outcome.collected,
                outcome.reason,
            )
            self.engine.metrics.code("none", outcome.reason)
            audit = self._audit_event(outcome.leg, owner, "dtmf", outcome.reason)
            if audit is not None:
                audit.collected = outcome.collected
                self.engine.audit_record(audit)
            return
        logger.info(
            "call %s: %s pressed %s → %s %s (metaflows of %s)",
            self.id,
            outcome.leg,
            outcome.collected,
            outcome.kind,
            outcome.key,
            owner,
        )
        injected = {
            "dtmf_leg": outcome.leg,
            "collected": outcome.collected,
            "captures": list(outcome.captures),
        }
        self.engine.record_match(self, owner, outcome)
        audit = self._audit_event(outcome.leg, owner, "dtmf", "running")
        if audit is not None:
            audit.collected = outcome.collected
            audit.matched_key = outcome.key
            audit.match_kind = outcome.kind
        self._launch(outcome.node, outcome.leg, injected, audit)

    def _audit_event(
        self, presser: str, owner: str | None, trigger: str, outcome: str
    ) -> MetaflowEvent | None:
        """The audit row of one execution, owned by ``owner``'s account (or the presser's)."""
        owner_leg = self.legs.get(owner) if owner else None
        presser_leg = self.legs.get(presser)
        leg = owner_leg or presser_leg
        identity = leg.identity if leg is not None else None
        if identity is None:
            return None
        return MetaflowEvent(
            account_id=identity.account_id,
            call_id=self.id,
            leg=presser,
            trigger=trigger,
            outcome=outcome,
            channel_id=presser_leg.channel_id if presser_leg else None,
            owner=owner,
            user_id=identity.user_id if owner_leg else None,
            device_id=identity.device_id if owner_leg else None,
        )

    def _launch(
        self,
        node: Node,
        presser: str,
        injected: dict[str, Any],
        audit: MetaflowEvent | None,
    ) -> None:
        """Run a flow as a child task, timed from now (the match) to its first ARI request."""
        gateway = self.engine.gateway
        if audit is not None:
            audit.module = node.module
        if gateway is None:
            logger.warning("call %s: Asterisk unavailable; %s not run", self.id, node.module)
            self.engine.metrics.code(node.module, "unavailable")
            if audit is not None:
                audit.outcome = "asterisk_unavailable"
                self.engine.audit_record(audit)
            return
        context = ModuleContext(
            call_id=self.id,
            gateway=gateway,
            presser=presser,
            channels={r: leg.channel_id for r, leg in self.legs.items() if not leg.gone},
            bridge_id=self.bridge_id,
            data=injected,
            playbacks=self.playbacks,
            settings=self.engine.settings,
            call=self,
        )
        dispatch = Dispatch(self.engine.metrics.dispatch)
        flow_context = contextvars.copy_context()
        flow_context.run(DISPATCH.set, dispatch)
        task = asyncio.create_task(self._flow(node, context, dispatch, audit), context=flow_context)
        self.children.add(task)
        task.add_done_callback(self.children.discard)
        self.engine.flows_started += 1

    async def _flow(
        self,
        node: Node,
        context: ModuleContext,
        dispatch: Dispatch,
        audit: MetaflowEvent | None,
    ) -> None:
        outcome = "interrupted"  # the call ended (or the service stopped) while it ran
        steps: list[tuple[str, str]] = []
        try:
            steps = await run_flow(node, context, REGISTRY)
            failed = [result for _, result in steps if result != "ok"]
            outcome = failed[-1] if failed else "ok"
        finally:
            self.engine.metrics.code(node.module, outcome)
            if audit is not None:
                audit.outcome = outcome
                audit.steps = steps
                latency = dispatch.latency
                audit.dispatch_ms = None if latency is None else round(latency * 1000, 3)
                audit.duration_ms = round((time.perf_counter() - dispatch.started) * 1000, 3)
                self.engine.audit_record(audit)

    async def _refresh(self, account: str | None) -> None:
        """Metaflows changed: re-resolve (the resolver's cache makes this one load per
        account); a collector in the middle of a code keeps the old document."""
        for role, leg in self.legs.items():
            if leg.identity is None or (account is not None and leg.identity.account_id != account):
                continue
            try:
                leg.metaflows = await self.engine.resolver.resolve(leg.identity)
            except DatastoreUnavailable:
                if leg.metaflows is None:
                    self._retry_metaflows_later(leg.identity.account_id)
                continue
            current = self.collectors.get(role)
            if current is not None and current.armed:
                continue
            if leg.metaflows.is_empty:
                self.collectors.pop(role, None)
            else:
                self.collectors[role] = new_collector(
                    leg.metaflows, role, frozenset(self.legs) - {role}
                )

    # -- actions for modules (run in the call's child tasks) ------------------------------------

    def _other(self, role: str) -> str:
        return CALLEE if role == CALLER else CALLER

    def _require_connected(self, presser: str) -> tuple[Leg, Leg]:
        if self.phase != "connected" or self.bridge_id is None:
            raise ModuleFailed("the call is not connected")
        if self.transfer is not None:
            raise ModuleFailed("a transfer is already running on this call")
        if self.held is not None:
            raise ModuleFailed("the call is on hold; resume it first")
        me, other = self.legs.get(presser), self.legs.get(self._other(presser))
        if me is None or other is None or me.gone or other.gone:
            raise ModuleFailed("both parties must be on the call")
        return me, other

    async def blind_transfer(self, presser: str, extension: str) -> str:
        """The other party goes on in the dialplan at the transfer context; the presser is
        hung up."""
        if not EXTENSION_RE.match(extension):
            raise ModuleFailed(f"{extension!r} is not a dialable extension")
        transferor, transferee = self._require_connected(presser)
        gateway = self.engine.gateway_or_raise()
        context = self.engine.settings.transfer_context
        await self.recorder.stop(gateway, "stopped for a transfer")
        transferee.released = True
        try:
            await gateway.continue_in_dialplan(
                transferee.channel_id, context=context, extension=extension, priority=1
            )
        except (AriError, AriUnavailable) as exc:
            transferee.released = False
            raise ModuleFailed(f"cannot transfer to {extension}: {exc}") from exc
        logger.info(
            "call %s: blind transfer of %s to %s@%s", self.id, transferee.name, extension, context
        )
        await self.safely(gateway.hangup(transferor.channel_id))
        return "transferred"

    async def attended_transfer(self, presser: str, request: TransferRequest) -> str:
        if not EXTENSION_RE.match(request.extension):
            raise ModuleFailed(f"{request.extension!r} is not a dialable extension")
        self._require_connected(presser)
        transfer = AttendedTransfer(self, presser, self._other(presser), request)
        self.transfer = transfer
        try:
            return await transfer.run()
        finally:
            if self.transfer is transfer:
                self.transfer_finished()

    def transfer_finished(self) -> None:
        transfer, self.transfer = self.transfer, None
        if transfer is not None and transfer.target_id not in {
            leg.channel_id for leg in self.legs.values()
        }:
            self.engine.untrack_channel(transfer.target_id)

    def adopt_transfer_target(self, role: str, leg: Leg, bridge_id: str | None) -> None:
        """The transfer target takes ``role``'s place in the call (synchronous: the owner
        task never sees half of it)."""
        old = self.legs[role]
        self.engine.untrack_channel(old.channel_id)
        leg.role = role
        self.legs[role] = leg
        self.bridge_id = bridge_id
        self.transfer = None
        self.collectors.pop(role, None)
        self.submit(
            {"type": "_resolve", "role": role, "snapshot": {"id": leg.channel_id, "name": leg.name}}
        )

    # hold / resume

    async def hold(self, presser: str, moh_class: str | None, unhold_key: str) -> str:
        """The other party hears music on hold; the presser leaves the bridge (silence)."""
        if self.held is not None:
            return "already_held"
        holder, _ = self._require_connected(presser)
        gateway = self.engine.gateway_or_raise()
        assert self.bridge_id is not None
        self.held = Hold(presser, unhold_key)
        try:
            await gateway.remove_from_bridge(self.bridge_id, holder.channel_id)
            await gateway.start_bridge_moh(self.bridge_id, moh_class)
        except (AriError, AriUnavailable) as exc:
            self.held = None
            await self.safely(gateway.add_to_bridge(self.bridge_id, [holder.channel_id]))
            raise ModuleFailed(f"cannot hold: {exc}") from exc
        logger.info("call %s: %s put the call on hold", self.id, presser)
        return "held"

    async def resume(self, presser: str) -> str:
        held, self.held = self.held, None
        if held is None:
            return "not_held"
        gateway = self.engine.gateway_or_raise()
        holder = self.legs[held.holder]
        if self.bridge_id is not None:
            await self.safely(gateway.stop_bridge_moh(self.bridge_id))
            if not holder.gone:
                await self.safely(gateway.add_to_bridge(self.bridge_id, [holder.channel_id]))
        logger.info("call %s: resumed by %s", self.id, presser)
        return "resumed"

    # callflow

    async def send_on(
        self, presser: str, roles: list[str], context: str, extension: str, priority: int
    ) -> str:
        """Legs continue in the dialplan; the app's part of the call ends (legs not sent on
        are hung up, as after a blind transfer)."""
        if not EXTENSION_RE.match(extension):
            raise ModuleFailed(f"{extension!r} is not a dialable extension")
        if self.transfer is not None or self.parked is not None:
            raise ModuleFailed("the call is being transferred or parked")
        gateway = self.engine.gateway_or_raise()
        await self.recorder.stop(gateway, "stopped: the call left the app")
        for role in roles:
            leg = self.legs[role]
            leg.released = True
            try:
                await gateway.continue_in_dialplan(
                    leg.channel_id, context=context, extension=extension, priority=priority
                )
            except (AriError, AriUnavailable) as exc:
                leg.released = False
                raise ModuleFailed(f"cannot send {role} to {extension}@{context}: {exc}") from exc
        logger.info("call %s: %s sent on to %s@%s,%d", self.id, roles, extension, context, priority)
        return "sent"

    # park

    async def park(self, presser: str, wanted: str | None, timeout: float) -> str:
        parker, parked = self._require_connected(presser)
        identity = parker.identity or parked.identity
        if identity is None:
            raise ModuleFailed("no account to park in")
        gateway = self.engine.gateway_or_raise()
        try:
            slot = self.engine.parking.claim(identity.account_id, wanted, self)
        except SlotUnavailable as exc:
            await self.safely(gateway.play_on_channel(parker.channel_id, "sound:pbx-parkingfailed"))
            raise ModuleFailed(str(exc)) from exc
        loop = asyncio.get_running_loop()
        self.parked = Parked(
            identity.account_id,
            slot,
            self._other(presser),
            dial_string_of(parker.name),
            loop.time() + timeout,
            timeout=timeout,
        )
        self.phase = "parked"
        self._arm_timer(loop.time())  # set from this flow's task, not the call's
        self.collectors = {}
        await self.recorder.stop(gateway, "stopped: the call was parked")
        assert self.bridge_id is not None
        await self.safely(gateway.remove_from_bridge(self.bridge_id, parker.channel_id))
        await self.safely(gateway.start_bridge_moh(self.bridge_id, None))
        try:
            playback = await gateway.play_on_channel(parker.channel_id, f"digits:{slot}")
            self.hangup_after[playback] = parker.channel_id
        except (AriError, AriUnavailable):
            await self.safely(gateway.hangup(parker.channel_id))
        logger.info(
            "call %s: %s parked in slot %s of %s", self.id, parked.name, slot, identity.account_id
        )
        return "parked"

    def _unpark_slot(self) -> None:
        if self.parked is not None:
            self.engine.parking.release(self.parked.account_id, self.parked.slot, self)

    async def _retrieved(self, snapshot: dict[str, Any]) -> None:
        """A channel in ``Stasis(metaflows,unpark,<slot>)`` takes the parker's place."""
        gateway = self.engine.gateway_or_raise()
        channel_id = snapshot["id"]
        parked = self.parked
        if self.phase != "parked" or parked is None or self.bridge_id is None:
            self.engine.untrack_channel(channel_id)
            await self.safely(gateway.set_variable(channel_id, "METAFLOWS_UNPARK_STATUS", "EMPTY"))
            await self.safely(gateway.continue_in_dialplan(channel_id))
            return
        parker_role = self._other(parked.role)
        self.engine.untrack_channel(self.legs[parker_role].channel_id)
        self.engine.track_channel(channel_id, self)
        leg = Leg(parker_role, channel_id, snapshot.get("name", ""), snapshot.get("state", ""))
        leg.in_stasis = leg.answered = True
        self.legs[parker_role] = leg
        self._unpark_slot()
        self.parked = None
        try:
            if snapshot.get("state") != "Up":
                await gateway.answer(channel_id)
            await gateway.stop_bridge_moh(self.bridge_id)
            await gateway.add_to_bridge(self.bridge_id, [channel_id])
        except Gone:
            return  # someone left meanwhile; their hangup event ends the call
        leg.state = "Up"
        self.phase = "connected"
        logger.info("call %s: slot %s retrieved by %s", self.id, parked.slot, leg.name)
        leg.identity, leg.metaflows = await self._owner_of(snapshot)
        parked_leg = self.legs[parked.role]
        if parked_leg.identity is None:
            parked_leg.identity, parked_leg.metaflows = await self._owner_of(
                {"id": parked_leg.channel_id, "name": parked_leg.name}
            )
        self._build_collectors()

    async def _park_timed_out(self) -> None:
        parked = self.parked
        assert parked is not None
        logger.info(
            "call %s: slot %s timed out; ringing back %s", self.id, parked.slot, parked.parker
        )
        self._unpark_slot()
        leg = self.legs[parked.role]
        gateway = self.engine.gateway_or_raise()
        await self.safely(gateway.set_variable(leg.channel_id, "METAFLOWS_PARKER", parked.parker))
        await self.safely(
            gateway.set_variable(leg.channel_id, "METAFLOWS_PARKED_SLOT", parked.slot)
        )
        self.parked = None
        await self._send_parked_leg(leg, self.engine.settings.park_timeout_context, parked.slot, 1)

    async def _send_parked_on(self, context: str, extension: str, priority: int) -> None:
        parked = self.parked
        if parked is None or self.phase != "parked":
            return
        self._unpark_slot()
        self.parked = None
        await self._send_parked_leg(self.legs[parked.role], context, extension, priority)

    async def _send_parked_leg(self, leg: Leg, context: str, extension: str, priority: int) -> None:
        gateway = self.engine.gateway_or_raise()
        leg.released = True
        if self.bridge_id is not None:
            await self.safely(gateway.stop_bridge_moh(self.bridge_id))
        try:
            await gateway.continue_in_dialplan(
                leg.channel_id, context=context, extension=extension, priority=priority
            )
        except (AriError, AriUnavailable) as exc:
            logger.warning("call %s: cannot send the parked party on: %s", self.id, exc)
            leg.released = False
            await self.safely(gateway.hangup(leg.channel_id))

    def describe_parked(self) -> dict[str, Any]:
        parked = self.parked
        assert parked is not None
        leg = self.legs[parked.role]
        return {
            "slot": parked.slot,
            "channel_id": leg.channel_id,
            "name": leg.name,
            "call_id": self.id,
            "parker": parked.parker,
            "parked_at": parked.since,
            "timeout": parked.timeout,
        }

    async def record(self, presser: str, action: str, options: dict[str, Any]) -> str:
        gateway = self.engine.gateway_or_raise()
        recorder = self.recorder
        try:
            if action == "toggle":
                action = "stop" if recorder.recording else "start"
            if action == "start":
                leg = self.legs.get(presser)
                identity = leg.identity if leg else None
                if identity is None:
                    raise ModuleFailed("the presser has no account to own the recording")
                return await recorder.start(
                    gateway,
                    self.bridge_id if self.phase == "connected" else None,
                    identity,
                    [leg.channel_id for leg in self.legs.values() if not leg.gone],
                    fmt=str(options.get("format", "wav")),
                    time_limit=options.get("time_limit"),
                    label=options.get("label"),
                )
            if action == "stop":
                return await recorder.stop(gateway)
            if action in ("mask", "unmask"):
                return await recorder.mask(gateway, action == "mask")
        except RecordingRefused as exc:
            raise ModuleFailed(str(exc)) from exc
        raise ModuleFailed(f"unknown record_call action {action!r}")

    # -- views ------------------------------------------------------------------------------

    def describe(self, role: str) -> dict[str, Any]:
        leg = self.legs[role]
        other = self.legs.get(CALLEE if role == CALLER else CALLER)
        identity = leg.identity
        collector = self.collectors.get(role)
        return {
            "id": leg.channel_id,
            "call_id": self.id,
            "role": role,
            "name": leg.name,
            "state": leg.state,
            "account_id": identity.account_id if identity else None,
            "user_id": identity.user_id if identity else None,
            "device_id": identity.device_id if identity else None,
            "peer": other.channel_id if other and not other.gone else None,
            "bridge_id": self.bridge_id,
            "phase": self.phase,
            "collector_armed": bool(collector and collector.armed),
            "recording": self.recorder.current.id if self.recorder.current else None,
            "recording_masked": self.recorder.masked,
            "held": self.held is not None,
            "parked_slot": self.parked.slot if self.parked else None,
            "transfer": (
                None
                if self.transfer is None
                else {"state": self.transfer.state, "extension": self.transfer.request.extension}
            ),
        }
