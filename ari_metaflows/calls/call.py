"""One call in dial mode: its legs, bridge, collectors and the task that owns them.

Every event of the call goes through ``submit`` into the call's mailbox and is handled in order
by its one task, which also owns the call's timers (ring timeout, collector deadlines, the
deadlines features set). Only this task changes the call's state: metaflow flows run as child
tasks (so a long module never holds up the call's events) and ask it to (``ask``); they are
cancelled and awaited when the call ends. The call knows legs, bridges and its phase, never a
feature: features plug in through ``calls.feature.Feature`` (docs/architecture.md). Asterisk
facts this relies on are in docs/asterisk-facts.md: "answered" means ``Dial ANSWER`` or state
``Up``; the callee is originated and enters Stasis once answered (a created and dialed Local
channel, such as a transfer target, enters before).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ..ari.gateway import AriRequest
from ..audit import MetaflowEvent
from ..backoff import Backoff, Delays
from ..errors import AriError, AriUnavailable, DatastoreUnavailable, Gone, ModuleFailed
from ..metaflows.documents import EffectiveMetaflows, Node
from ..metaflows.resolver import LegIdentity, MetaflowResolver
from ..metrics import DISPATCH, Dispatch, Metrics
from .collector import Collector, Match, NoMatch, new_collector
from .feature import (
    DigitHook,
    EngineHandle,
    FeatureRegistry,
    Interceptor,
    ModuleContext,
    Playbacks,
    run_flow,
)
from .identity import identity_of
from .leg import Leg, Phase, Role
from .mailbox import Mailbox
from .messages import TICK, Adopted, Ask, LegGone, Message, Refresh, Resolve, RunNode
from .relay import Relay, RelayGate, duration_of

logger = logging.getLogger(__name__)

T = TypeVar("T")
CALLER, CALLEE = Role.CALLER, Role.CALLEE
DIALING, CONNECTED, PARKED, ENDED = Phase.DIALING, Phase.CONNECTED, Phase.PARKED, Phase.ENDED
FAILED_DIAL = {"BUSY", "NOANSWER", "CHANUNAVAIL", "CONGESTION", "CANCEL"}
_CAUSE_STATUS = {17: "BUSY", 18: "NOANSWER", 19: "NOANSWER", 34: "CONGESTION"}
BRIDGE_TYPES = "mixing,dtmf_events"  # without dtmf_events, SIP media bypasses Asterisk
DIAL_ATTEMPTS = 5
ORIGINATE_BACKSTOP = 5  # s past the ring timeout before Asterisk drops an unanswered callee
METAFLOW_RETRY = Backoff(initial=1.0, maximum=30.0)  # before resolving metaflows again
FLOWS_GRACE = 5.0  # the most a call's end waits for its cancelled flows (s)


@dataclass(slots=True)
class Held:
    """Digits of one leg held back while a code may be collected (SPEC §5.6)."""

    digits: list[tuple[str, int]] = field(default_factory=list)  # (digit, duration_ms)
    matched: bool = False  # a code matched: the digits are dropped, never replayed


class Host(EngineHandle, Protocol):
    """What a call needs of its engine (``CallEngine``), beyond what features may use."""

    features: FeatureRegistry
    metrics: Metrics
    resolver: MetaflowResolver
    default_account: str | None
    flows_started: int
    asterisk: str
    live_mark: Callable[[Call], None] | None
    relay_gate: RelayGate

    def track_channel(self, channel_id: str, call: Call) -> None: ...

    def track_bridge(self, bridge_id: str, call: Call) -> None: ...

    def forget(self, call: Call) -> None: ...

    def destroy_bridge_later(self, bridge_id: str) -> None: ...

    def hangup_when_seen(self, channel_id: str) -> None: ...

    def audit_record(self, event: MetaflowEvent) -> None: ...

    def record_match(self, call: Call, owner: str, match: Match) -> None: ...


@dataclass(eq=False)
class Call:
    engine: Host
    id: str
    dialstring: str
    ring_timeout: float
    legs: dict[str, Leg] = field(default_factory=dict)
    bridge_id: str | None = None
    phase: Phase = DIALING
    collectors: dict[str, Collector] = field(default_factory=dict)
    playbacks: Playbacks = field(default_factory=Playbacks)
    queue: Mailbox[dict[str, Any] | Message] = field(default_factory=Mailbox)
    children: set[asyncio.Task[Any]] = field(default_factory=set)
    ring_deadline: float | None = None
    task: asyncio.Task[None] | None = None
    feature_state: dict[str, Any] = field(default_factory=dict)  # feature name → its state
    deadlines: dict[str, float] | None = None  # feature name → loop time (made when needed)
    interceptors: tuple[Interceptor, ...] = ()
    digit_hooks: tuple[DigitHook, ...] = ()
    serving: bool = False  # the owner task is taking messages
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)  # see _arm_timer
    metaflow_retry: asyncio.TimerHandle | None = field(default=None, repr=False)
    metaflow_backoff: Delays | None = field(default=None, repr=False)  # made when needed
    held: dict[str, Held] | None = None  # role → digits held back (made when needed)
    relay: Relay | None = field(default=None, repr=False)  # made at the first relayed digit

    def submit(self, event: dict[str, Any] | Message) -> None:
        self.queue.put(event)

    # -- asking the owner task ----------------------------------------------------------------

    def on_owner_task(self) -> bool:
        return not self.serving or asyncio.current_task() is self.task

    async def ask(self, action: Callable[[], T]) -> T:
        """Run ``action`` in the call's own task and return its result (or raise its error).
        From the owner task itself, or once the call stopped serving, it runs at once."""
        if self.on_owner_task():
            return action()
        reply: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.queue.put(Ask(action, reply))
        return await reply

    async def ask_async(self, action: Callable[[], Awaitable[T]]) -> T:
        """``ask`` for a coroutine: the call's task awaits it before taking its next event."""
        if self.on_owner_task():
            return await action()
        reply: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.queue.put(Ask(action, reply, awaits=True))
        return await reply

    def post(self, action: Callable[[], Awaitable[object]]) -> None:
        """Like ``ask_async`` without waiting for the result (for the API and the engine)."""
        if self.serving:
            self.queue.put(Ask(action, awaits=True))
        else:
            logger.debug("call %s: ended; dropping a request", self.id)

    # -- the owner task ---------------------------------------------------------------------

    async def run(self, start: dict[str, Any] | None) -> None:
        loop = asyncio.get_running_loop()
        queue = self.queue
        mark = self.engine.live_mark  # the cluster's write-behind of live legs (or None)
        self.serving = True
        try:
            if start is not None:
                await self._start(start)
                start = None  # this frame lives as long as the call: keep no event in it
                self._arm_timer(loop.time())
            while self.phase is not ENDED:
                # A queued event is taken without suspending: a burst costs no wake-up.
                event = queue.get_nowait() if len(queue) else await queue.get()
                if type(event) is dict:
                    await self._on_event(event)
                elif event is not TICK:
                    await self._on_message(event)  # type: ignore[arg-type]
                del event  # an idle call holds no parsed event (~5 KiB of JSON per leg)
                if mark is not None:
                    mark(self)  # a set insertion: the write happens later, off this task
                now = loop.time()
                await self._fire_timers(now)
                self._arm_timer(now)
        except asyncio.CancelledError:
            self._cancel_children()
            raise
        except Exception:
            logger.exception("call %s: failed; forgetting it", self.id)
            if self.phase is DIALING:
                await self._fail("CONGESTION")  # a caller must never stay ringing in Stasis
        finally:
            self.serving = False
            self.phase = ENDED
            self._refuse_pending()
            if self.metaflow_retry is not None:
                self.metaflow_retry.cancel()
            if self.timer is not None:
                self.timer.cancel()
            self.engine.forget(self)
            if mark is not None:
                mark(self)  # its rows go
            self.held = None
            if self.relay is not None:
                await self.relay.close()
            await self._stop_children()

    def _refuse_pending(self) -> None:
        """Requests that came too late: whoever waits learns the call has ended."""
        while len(self.queue):
            item = self.queue.get_nowait()
            if type(item) is Ask and item.reply is not None and not item.reply.done():
                item.reply.set_exception(ModuleFailed("the call has ended"))

    def _cancel_children(self) -> None:
        for child in list(self.children):
            child.cancel()

    async def _stop_children(self) -> None:
        """Cancel the call's flows and wait for them (each records its audit row)."""
        children = list(self.children)
        if not children:
            return
        for child in children:
            child.cancel()
        _, pending = await asyncio.wait(children, timeout=FLOWS_GRACE)
        if pending:
            logger.warning("call %s: %d flows still ending after the call", self.id, len(pending))

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
        self.queue.put(TICK)

    def _next_deadline(self) -> float | None:
        best = self.ring_deadline
        for collector in self.collectors.values():
            deadline = collector.deadline
            if deadline is not None and (best is None or deadline < best):
                best = deadline
        if self.deadlines:
            for deadline in self.deadlines.values():
                if best is None or deadline < best:
                    best = deadline
        return best

    def set_deadline(self, feature: str, when: float) -> None:
        """``feature``'s ``on_timer`` runs at loop time ``when`` (owner task only)."""
        if self.deadlines is None:
            self.deadlines = {}
        self.deadlines[feature] = when
        self._arm_timer(asyncio.get_running_loop().time())

    def clear_deadline(self, feature: str) -> None:
        if self.deadlines:
            self.deadlines.pop(feature, None)

    async def _fire_timers(self, now: float) -> None:
        deadlines = self.deadlines
        if deadlines:
            due = [name for name, when in deadlines.items() if now >= when]
            for name in due:
                del deadlines[name]
                feature = self.engine.features.by_name.get(name)
                if feature is not None:
                    await feature.on_timer(self, now)
            if due:
                return
        if self.ring_deadline is not None and now >= self.ring_deadline and self.phase is DIALING:
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
        originate = gateway.originate_request(
            self.dialstring,
            app_args=f"{CALLEE},{self.id}",
            channel_id=callee_id,
            originator=caller.channel_id,
            # Our ring deadline decides; Asterisk's own only if we are gone meanwhile.
            timeout=math.ceil(self.ring_timeout) + ORIGINATE_BACKSTOP,
        )
        # The caller hears ringing at once, without waiting for the callee's own ringing; the
        # ring goes with the originate, one write to Asterisk for both.
        ring = caller.state != "Up"
        created, *rung = await gateway.in_order(
            originate, *([gateway.ring_request(caller.channel_id)] if ring else [])
        )
        try:
            if isinstance(created, Exception):
                raise created
            self.legs[CALLEE].name = (
                str(created.get("name", "")) if isinstance(created, dict) else ""
            )
        except Gone:
            await self._end()
            return
        except AriError as exc:
            logger.info("call %s: cannot dial %s: %s", self.id, self.dialstring, exc.message)
            self.legs[CALLEE].gone = True
            if exc.status >= 500 and "Allocation failed" not in exc.message:
                self.engine.hangup_when_seen(callee_id)  # a proxy's 502: it may be ringing
            await self._fail("CHANUNAVAIL")
            return
        except AriUnavailable as exc:
            # Asterisk overloaded or unreachable: the caller must not stay stranded in Stasis.
            logger.warning("call %s: cannot dial %s: %s", self.id, self.dialstring, exc)
            self.engine.hangup_when_seen(callee_id)  # the originate may complete yet
            await self._fail("CONGESTION")
            return
        self.ring_deadline = asyncio.get_running_loop().time() + self.ring_timeout
        for outcome in rung:
            self.note_refusal(outcome)
        caller.identity, caller.metaflows = await self.owner_of(snapshot)
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

    async def owner_of(
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

    async def resolve_leg(self, role: str, snapshot: dict[str, Any]) -> None:
        """Find the owner and metaflows of ``role``'s leg and rebuild the collectors."""
        leg = self.legs.get(role)
        if leg is not None:
            leg.identity, leg.metaflows = await self.owner_of(snapshot)
            self.build_collectors()
            await self._reabsorb()

    def _retry_metaflows_later(self, account: str) -> None:
        """The database was away when a leg's metaflows were needed: ask again with capped
        backoff, so the leg does not stay without features for the rest of the call."""
        if self.metaflow_retry is not None or self.phase is ENDED:
            return
        if self.metaflow_backoff is None:
            self.metaflow_backoff = METAFLOW_RETRY.delays()

        def due() -> None:
            self.metaflow_retry = None
            self.submit(Refresh(account))

        self.metaflow_retry = asyncio.get_running_loop().call_later(
            self.metaflow_backoff.next_delay(), due
        )

    async def connect_callee(self, snapshot: dict[str, Any]) -> None:
        """Whoever holds the callee role now (say, a directed pickup's device) answered and is
        in Stasis: connect the call as when the dialled callee answers (owner task only)."""
        await self._answered(snapshot)

    async def _answered(self, snapshot: dict[str, Any]) -> None:
        """Connect once the callee has answered *and* is in Stasis (an originated callee's
        Dial ANSWER comes before its StasisStart; a created Local one's StasisStart before)."""
        callee_leg = self.legs[CALLEE]
        if self.phase is not DIALING or not (callee_leg.answered and callee_leg.in_stasis):
            return
        self.ring_deadline = None
        gateway = self.engine.gateway_or_raise()
        caller, callee = self.legs[CALLER], self.legs[CALLEE]
        callee.state = "Up"
        # Whose digits the bridge absorbs depends on the collectors: know them first.
        callee.identity, callee.metaflows = await self.owner_of(snapshot)
        self.build_collectors()
        bridge_id = f"mf-{self.id}"
        self.engine.track_bridge(bridge_id, self)
        self.bridge_id = bridge_id  # set first: a create that timed out is still cleaned up
        # Answer, bridge, join: one write to Asterisk, which runs them in this order.
        steps: list[tuple[str, AriRequest]] = []
        if caller.state != "Up":
            steps.append(("answer the caller", gateway.answer_request(caller.channel_id)))
        steps.append(("bridge the call", gateway.create_bridge_request(BRIDGE_TYPES, bridge_id)))
        for absorb, channels in self._bridge_groups(bridge_id, (CALLER, CALLEE), None).items():
            if channels:
                add = gateway.add_to_bridge_request(bridge_id, channels, absorb_dtmf=absorb)
                steps.append(("bridge the call", add))
        outcomes = await gateway.in_order(*(request for _, request in steps))
        for (step, _), outcome in zip(steps, outcomes, strict=True):
            if isinstance(outcome, Gone):
                return  # a leg left meanwhile; its hangup event ends the call
            if isinstance(outcome, (AriError, AriUnavailable)):
                # Asterisk refused or is overloaded: like a Dial() that could not connect, the
                # callee is hung up and the caller goes on in the dialplan, never left in
                # Stasis.
                logger.warning("call %s: cannot %s: %s", self.id, step, outcome)
                await self._fail("CONGESTION")
                if isinstance(outcome, AriUnavailable):
                    # A create that timed out here may still complete in Asterisk after the
                    # destroy in _fail: destroy it once more when that can no longer happen.
                    self.engine.destroy_bridge_later(bridge_id)
                return
        caller.state = "Up"
        self.phase = CONNECTED
        logger.info("call %s: connected (%s ↔ %s)", self.id, caller.name, callee.name)

    async def _forwarded(self, forwarded: dict[str, Any]) -> None:
        """The callee answered with a forward (302), which Asterisk's dialer follows with a new
        channel we did not ask for: not followed, as before with create + dial (the new
        channel is hung up and the caller goes on with CHANUNAVAIL; docs/decisions.md)."""
        logger.info(
            "call %s: %s forwards to %s; not followed",
            self.id,
            self.dialstring,
            forwarded.get("name"),
        )
        gateway = self.engine.gateway_or_raise()
        await self.safely(gateway.hangup(str(forwarded["id"])))
        self.legs[CALLEE].gone = True
        await self._fail("CHANUNAVAIL")

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
        self.playbacks.target_gone(role)
        if self.phase is DIALING and role == CALLEE:
            await self._fail(_CAUSE_STATUS.get(cause or 0, "CHANUNAVAIL"))
            return
        for feature in self.engine.features.features:
            if await feature.on_leg_gone(self, role):
                return
        if not leg.party:
            return
        other = self.legs.get(self.other(role))
        hang_up = None
        if other is not None and not (other.gone or other.released):
            hang_up = other.channel_id
        await self._end(hang_up=hang_up)

    async def _end(self, *, hang_up: str | None = None) -> None:
        """The call is over: the other party (``hang_up``) is hung up and the bridge destroyed,
        in one write to Asterisk, then the features end with the call (none needs the bridge;
        a recording listens through its snoop channel)."""
        gateway = self.engine.gateway
        if self.phase is ENDED:
            if gateway is not None and hang_up is not None:
                await self.safely(gateway.hangup(hang_up))
            return
        self.phase = ENDED
        if gateway is not None:
            requests = [gateway.hangup_request(hang_up)] if hang_up is not None else []
            if self.bridge_id is not None:
                requests.append(gateway.destroy_bridge_request(self.bridge_id))
            for outcome in await gateway.in_order(*requests):
                self.note_refusal(outcome)
        for feature in self.engine.features.features:
            try:
                await feature.on_call_end(self)
            except Exception:
                logger.exception("call %s: %s could not end with the call", self.id, feature.name)
        logger.info("call %s: ended", self.id)

    async def leaving(self, reason: str) -> None:
        """The call's media is about to leave its bridge (a transfer, a park, sent on): the
        features that depend on it stop (a recording). Safe from a flow."""

        async def tell_features() -> None:
            for feature in self.engine.features.features:
                await feature.on_leaving(self, reason)

        await self.ask_async(tell_features)

    async def safely(self, action: Awaitable[Any]) -> None:
        """ARI requests racing a hangup: a gone object or an unreachable Asterisk is logged."""
        try:
            await action
        except (AriError, AriUnavailable) as exc:
            self.note_refusal(exc)

    def note_refusal(self, outcome: object) -> None:
        """``safely`` for one outcome of ``gateway.in_order``: an error is logged, not raised."""
        if isinstance(outcome, (Gone, AriUnavailable)):
            logger.debug("call %s: %s", self.id, outcome)
        elif isinstance(outcome, AriError):
            logger.info("call %s: Asterisk refused: %s", self.id, outcome)

    # -- state changes features ask for (owner task) ------------------------------------------

    def other(self, role: str) -> str:
        return CALLEE if role == CALLER else CALLER

    def require_connected(self, presser: str) -> tuple[Leg, Leg]:
        """The presser's leg and the other party's, when the call may be reshaped now (it is
        connected, no feature is busy with it, both parties are on it)."""
        if self.phase is not CONNECTED or self.bridge_id is None:
            raise ModuleFailed("the call is not connected")
        for feature in self.engine.features.features:
            refusal = feature.busy(self)
            if refusal is not None:
                raise ModuleFailed(refusal)
        me, other = self.legs.get(presser), self.legs.get(self.other(presser))
        if me is None or other is None or me.gone or other.gone:
            raise ModuleFailed("both parties must be on the call")
        return me, other

    def release(self, role: str, released: bool = True) -> None:
        """The leg goes (or, when that failed, stays) out of the app into the dialplan: then
        it is not ours to hang up."""
        leg = self.legs.get(role)
        if leg is not None:
            leg.released = released

    def add_leg(self, leg: Leg) -> None:
        self.legs[leg.role] = leg
        self.engine.track_channel(leg.channel_id, self)

    def track_channel(self, channel_id: str) -> None:
        """Events of this channel come to this call."""
        self.engine.track_channel(channel_id, self)

    def track_bridge(self, bridge_id: str) -> None:
        """Events of this bridge come to this call."""
        self.engine.track_bridge(bridge_id, self)

    def drop_leg(self, role: str) -> None:
        """Forget a leg that never joined (say, a transfer target that failed)."""
        leg = self.legs.pop(role, None)
        if leg is not None:
            self.engine.untrack_channel(leg.channel_id)

    def replace_leg(self, role: str, leg: Leg, *, resolve: bool) -> None:
        """``leg`` takes ``role``'s place in the call (a transfer target, a retriever); with
        ``resolve``, its owner and metaflows are found next, in order with the events."""
        old = self.legs.get(role)
        if old is not None and old.channel_id != leg.channel_id:
            self.engine.untrack_channel(old.channel_id)
        if self.legs.get(leg.role) is leg and leg.role != role:
            del self.legs[leg.role]
        leg.role = role
        leg.party = True
        self.legs[role] = leg
        self.engine.track_channel(leg.channel_id, self)
        self.collectors.pop(role, None)
        if self.held:
            self.held.pop(role, None)  # a new channel: what the old one held is not its
        self._settle_all()
        if resolve:
            self.submit(Resolve(role, {"id": leg.channel_id, "name": leg.name}))

    def mark_gone(self, role: str) -> None:
        leg = self.legs.get(role)
        if leg is not None:
            leg.gone = True

    def set_phase(self, phase: Phase) -> None:
        self.phase = phase

    # -- bridges and relayed digits (SPEC §5.6) -----------------------------------------------

    def absorbs(self, role: str) -> bool:
        """Does a collector that holds digits back listen to ``role``? Then its leg joins a
        bridge with absorbDTMF and the call relays what is not a code."""
        for collector in self.collectors.values():
            if role in collector.listen and not collector.metaflows.dtmf_passthrough:
                return True
        return False

    async def join_bridge(
        self, bridge_id: str, roles: Sequence[str], *, absorb: Collection[str] | None = None
    ) -> None:
        """Add the legs in ``roles`` to ``bridge_id``, absorbing the digits of those that
        ``absorb`` names (default: those a collector listens to, ``absorbs``). Safe from a
        flow; raises what the gateway raises."""

        groups = await self.ask(lambda: self._bridge_groups(bridge_id, roles, absorb))
        gateway = self.engine.gateway_or_raise()
        for flag, channels in groups.items():
            if channels:
                await gateway.add_to_bridge(bridge_id, channels, absorb_dtmf=flag)

    def _bridge_groups(
        self, bridge_id: str, roles: Sequence[str], absorb: Collection[str] | None
    ) -> dict[bool, list[str]]:
        """The channels of ``roles`` that join ``bridge_id`` without and with absorbDTMF, the
        legs marked as joining (owner task)."""
        groups: dict[bool, list[str]] = {False: [], True: []}
        for role in roles:
            leg = self.legs.get(role)
            if leg is None or leg.gone:
                continue
            flag = self.absorbs(role) if absorb is None else role in absorb
            leg.absorbed_in = bridge_id if flag else None
            leg.bridge = bridge_id  # ChannelEnteredBridge confirms it
            groups[flag].append(leg.channel_id)
        return groups

    async def _reabsorb(self) -> None:
        """Legs in the call's bridge that a collector now listens to but that joined without
        absorbDTMF (adopted after our restart, a transfer target that took a party's place)
        are added again with it: Asterisk departs and re-imparts a channel added to the bridge
        it is in (res/stasis/control.c)."""
        bridge = self.bridge_id
        if bridge is None or self.phase is not CONNECTED:
            return
        roles = [
            role
            for role, leg in self.legs.items()
            if leg.party
            and not leg.gone
            and leg.bridge == bridge
            and not leg.absorbed
            and self.absorbs(role)
        ]
        if roles:
            await self.safely(self.join_bridge(bridge, roles, absorb=roles))

    def hearers(self, role: str) -> list[Leg]:
        """The legs that share ``role``'s bridge: who hears what its phone sends."""
        me = self.legs.get(role)
        if me is None or me.bridge is None:
            return []
        return [
            leg
            for leg in self.legs.values()
            if leg is not me and not leg.gone and leg.bridge == me.bridge
        ]

    def relay_digits(
        self, role: str, digits: Iterable[tuple[str, int]], since: float | None = None
    ) -> None:
        """Send ``digits`` pressed on ``role``'s leg to everyone who would have heard them,
        had its bridge not absorbed them (nothing when it does not absorb them). In order per
        receiving leg; safe from a flow of the call (it only queues)."""
        me = self.legs.get(role)
        if me is None or not me.absorbed:
            return
        hearers = self.hearers(role)
        if not hearers:
            return
        relay = self.relay
        if relay is None:
            engine = self.engine
            relay = self.relay = Relay(
                self.id, lambda: engine.gateway, engine.metrics, engine.relay_gate
            )
        when = time.perf_counter() if since is None else since
        for digit, duration_ms in digits:
            for leg in hearers:
                relay.send(leg.channel_id, digit, duration_ms, when)

    def _bridged(self, kind: str, event: dict[str, Any]) -> None:
        """Keep each leg's bridge as Asterisk reports it (who hears whom)."""
        channel, bridge = event.get("channel"), event.get("bridge")
        if not isinstance(channel, dict) or not isinstance(bridge, dict):
            return
        role = self._role_of(channel.get("id"))
        bridge_id = bridge.get("id")
        if role is None or not isinstance(bridge_id, str):
            return
        leg = self.legs[role]
        if kind == "ChannelEnteredBridge":
            leg.bridge = bridge_id
        elif leg.bridge == bridge_id:
            # absorbed_in stays: a re-add (Left, then Entered) keeps what join_bridge asked
            # for, and every join of a call's leg goes through join_bridge.
            leg.bridge = None

    def add_interceptor(self, interceptor: Interceptor) -> None:
        self.interceptors = (*self.interceptors, interceptor)

    def remove_interceptor(
        self, interceptor: Interceptor, unhandled: Iterable[dict[str, Any] | LegGone] = ()
    ) -> None:
        """Stop routing events to ``interceptor``. What it took but did not handle goes back
        to the front of the mailbox, in order (a party that hung up must still end the call)."""
        self.interceptors = tuple(i for i in self.interceptors if i is not interceptor)
        self.queue.put_back(unhandled)

    def add_digit_hook(self, hook: DigitHook) -> None:
        self.digit_hooks = (*self.digit_hooks, hook)

    def remove_digit_hook(self, hook: DigitHook) -> None:
        self.digit_hooks = tuple(h for h in self.digit_hooks if h is not hook)

    # -- events -----------------------------------------------------------------------------

    def _role_of(self, channel_id: str | None) -> str | None:
        return next((r for r, leg in self.legs.items() if leg.channel_id == channel_id), None)

    async def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "ChannelEnteredBridge" or kind == "ChannelLeftBridge":
            self._bridged(kind, event)  # bookkeeping only: the event goes on
        if self.interceptors:
            for interceptor in self.interceptors:
                if interceptor.wants(event):
                    interceptor.deliver(event)
                    return
        raw = event.get("channel")
        channel: dict[str, Any] = raw if isinstance(raw, dict) else {}
        role = self._role_of(channel.get("id")) if channel else None
        if kind == "ChannelDtmfReceived" and role is not None:
            self.engine.metrics.dtmf_handled += 1
            self._digit(role, str(event.get("digit", "")), event.get("duration_ms"))
        elif kind == "Dial":
            peer = event.get("peer") or {}
            if self._role_of(peer.get("id")) == CALLEE:
                status = event.get("dialstatus")
                forwarded = event.get("forwarded")
                if isinstance(forwarded, dict) and forwarded.get("id") and self.phase is DIALING:
                    await self._forwarded(forwarded)
                elif status == "ANSWER":
                    self.legs[CALLEE].answered = True
                    await self._answered(peer)
                elif status in FAILED_DIAL and status != "NOANSWER" and self.phase is DIALING:
                    # NOANSWER is also what Asterisk's dialer says for any cause it has no
                    # name for (an unknown number, a rejection): the ChannelDestroyed that
                    # follows carries the cause, mapped as Dial() maps it (_CAUSE_STATUS).
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
        elif kind == "BridgeDestroyed" and self.phase is CONNECTED:
            if (event.get("bridge") or {}).get("id") == self.bridge_id:
                self.bridge_id = None
        else:
            if kind == "PlaybackFinished":
                playback = event.get("playback") or {}
                self.playbacks.finished(str(playback.get("id", "")), str(playback.get("state")))
            for feature in self.engine.features.by_event.get(str(kind), ()):
                await feature.on_event(self, event)

    async def _on_message(self, message: Message) -> None:
        if type(message) is Ask:
            await self._answer(message)
        elif isinstance(message, LegGone):
            for interceptor in self.interceptors:
                if interceptor.wants_gone(message.role):
                    interceptor.deliver(message)
                    return
            if message.role in self.legs:
                await self._leg_gone(message.role, None)
        elif isinstance(message, Resolve):
            await self.resolve_leg(message.role, message.snapshot)
        elif isinstance(message, Refresh):
            await self._refresh(message.account)
        elif isinstance(message, Adopted):
            for role, snapshot in zip((CALLER, CALLEE), message.snapshots, strict=True):
                leg = self.legs[role]
                leg.identity, leg.metaflows = await self.owner_of(snapshot)
            self.build_collectors()
            await self._reabsorb()
        elif isinstance(message, RunNode):
            audit = self.audit_event(message.role, message.role, "api", "running")
            self.launch(message.node, message.role, {"dtmf_leg": message.role}, audit)

    async def _answer(self, ask: Ask) -> None:
        reply = ask.reply
        try:
            result = ask.action()
            if ask.awaits:
                result = await result
        except asyncio.CancelledError:
            if reply is not None and not reply.done():
                reply.cancel()
            raise
        except Exception as exc:
            if reply is not None and not reply.done():
                reply.set_exception(exc)
            else:
                logger.exception("call %s: a request to the call failed", self.id)
            return
        if reply is not None and not reply.done():
            reply.set_result(result)

    # -- DTMF and metaflows -----------------------------------------------------------------

    def build_collectors(self) -> None:
        parties = frozenset(role for role, leg in self.legs.items() if leg.party)
        self.collectors = {}
        for role, leg in self.legs.items():
            if leg.party and leg.metaflows is not None and not leg.metaflows.is_empty:
                self.collectors[role] = new_collector(leg.metaflows, role, parties - {role})
        self._settle_all()

    def _digit(self, role: str, digit: str, duration: object = None) -> None:
        """A digit ended on ``role``'s leg: digit hooks, then the collectors; then, when its
        bridge absorbed it, hold it back (a code may be under way) or relay it at once."""
        if self.phase is not CONNECTED or len(digit) != 1:
            return
        if self.digit_hooks:
            for hook in self.digit_hooks:
                if hook(self, role, digit):
                    return  # a feature took it (an unhold key): nobody else hears it
        now = asyncio.get_running_loop().time()
        outcomes: list[tuple[str, Match | NoMatch]] | None = None
        for owner, collector in list(self.collectors.items()):
            outcome = collector.on_digit(role, digit, now)
            if outcome is not None:
                if outcomes is None:
                    outcomes = []
                outcomes.append((owner, outcome))
        leg = self.legs[role]
        if leg.absorbed:
            duration_ms = duration_of(duration)
            if self._holding(role) or (
                outcomes is not None and any(self._holds(owner) for owner, _ in outcomes)
            ):
                if self.held is None:
                    self.held = {}
                held = self.held.get(role)
                if held is None:
                    held = self.held[role] = Held()
                held.digits.append((digit, duration_ms))
            else:
                self.relay_digits(role, ((digit, duration_ms),))
        if outcomes is not None:
            for owner, outcome in outcomes:
                self._outcome(owner, outcome)

    def _holds(self, owner: str) -> bool:
        collector = self.collectors.get(owner)
        return collector is not None and not collector.metaflows.dtmf_passthrough

    def _holding(self, role: str) -> bool:
        """Is a code that holds digits back being collected from ``role``'s leg?"""
        for collector in self.collectors.values():
            if collector.armed_leg == role and not collector.metaflows.dtmf_passthrough:
                return True
        return False

    def _settle(self, role: str, matched: bool = False) -> str | None:
        """An attempt on ``role``'s leg ended: what becomes of the digits held back — kept
        while another code is still collected from the leg, else dropped after a match or
        replayed in the order pressed. None when nothing was held."""
        held = self.held.get(role) if self.held else None
        if held is None:
            return None
        held.matched = held.matched or matched
        if self._holding(role):
            return "held"
        assert self.held is not None
        del self.held[role]
        if held.matched:
            return "dropped"
        self.relay_digits(role, held.digits)
        return "replayed"

    def _settle_all(self) -> None:
        """Collectors were replaced: digits no collector holds any more are replayed."""
        if self.held:
            for role in list(self.held):
                self._settle(role)

    def _outcome(self, owner: str, outcome: Match | NoMatch) -> None:
        holds = self._holds(owner)
        if isinstance(outcome, NoMatch):
            # Not held back: the other party heard the digits as they were pressed.
            digits = self._settle(outcome.leg) or "passed"
            logger.info(
                "call %s: %s pressed %s: %s",
                self.id,
                outcome.leg,
                outcome.collected,
                outcome.reason,
            )
            self.engine.metrics.code("none", outcome.reason)
            audit = self.audit_event(outcome.leg, owner, "dtmf", outcome.reason)
            if audit is not None:
                audit.collected = outcome.collected
                audit.digits = digits
                self.engine.audit_record(audit)
            return
        fate = self._settle(outcome.leg, matched=holds)
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
        audit = self.audit_event(outcome.leg, owner, "dtmf", "running")
        if audit is not None:
            audit.collected = outcome.collected
            audit.matched_key = outcome.key
            audit.match_kind = outcome.kind
            audit.digits = fate or "passed"
        self.launch(outcome.node, outcome.leg, injected, audit)

    def audit_event(
        self, presser: str, owner: str | None, trigger: str, outcome: str
    ) -> MetaflowEvent | None:
        """The audit row of one execution, owned by ``owner``'s account (or the presser's)."""
        owner_leg = self.legs.get(owner) if owner else None
        presser_leg = self.legs.get(presser)
        leg = owner_leg or presser_leg
        identity = leg.identity if leg is not None else None
        if identity is None:
            # A callee still ringing has no owner yet (the API may pick it up): its call's.
            caller = self.legs.get(CALLER)
            if self.phase is not DIALING or caller is None or caller.identity is None:
                return None
            identity, owner_leg = caller.identity, None
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

    def launch(
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
            channels={
                r: leg.channel_id for r, leg in self.legs.items() if leg.party and not leg.gone
            },
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
            steps = await run_flow(node, context, self.engine.features.runners)
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
        parties = frozenset(role for role, leg in self.legs.items() if leg.party)
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
            if leg.metaflows.is_empty or not leg.party:
                self.collectors.pop(role, None)
            else:
                self.collectors[role] = new_collector(leg.metaflows, role, parties - {role})
        self._settle_all()

    # -- views ------------------------------------------------------------------------------

    def describe(self, role: str) -> dict[str, Any]:
        leg = self.legs[role]
        other = self.legs.get(self.other(role))
        identity = leg.identity
        collector = self.collectors.get(role)
        view: dict[str, Any] = {
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
            "asterisk": self.engine.asterisk,
        }
        for feature in self.engine.features.features:
            view.update(feature.describe(self, role))
        return view
