"""The one protocol between the call core and the features (transfer, hold, park, ...).

The core knows legs, bridges, the phase, its mailbox and timers; a feature knows its modules,
its per-call state and the events it asked for. The core calls a feature only through
``Feature``; it never imports one. Features are collected into a ``FeatureRegistry`` when the
service is wired (``ari_metaflows.features.build_registry``) and handed to the engine and to
document validation. Adding a feature means adding one folder: see docs/architecture.md.

Where a feature's code runs:

* its module runners run in a flow, a child task of the call: they act through ARI and *ask*
  the call's own task to change call state (``await call.ask(fn)``);
* its hooks (``on_event``, ``on_timer``, ``on_leg_gone``, ``on_call_end``, ...) run in the
  call's own task and may change call state directly.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from ..ari.gateway import AriError, AriGateway, AriUnavailable
from ..audit import MetaflowEvent
from ..errors import ModuleFailed
from ..metaflows.documents import EffectiveMetaflows, Node
from ..metaflows.resolver import LegIdentity
from ..metaflows.schema import Schema
from .collector import Collector
from .leg import Leg, Phase
from .messages import LegGone, Message
from .settings import EngineSettings

T = TypeVar("T")

logger = logging.getLogger(__name__)

EXTENSION_RE = re.compile(r"^[A-Za-z0-9*#+_-]{1,64}$")
NO_MATCH = "no_match"  # Kazoo's capture sentinel: "the code captured nothing"
# A runner returns this to end its flow: the node's children do not run (pivot: the fetched
# node is the rest of the flow).
END_OF_FLOW = "\x00end-of-flow"
_SCHEMES = ("sound:", "recording:", "tone:", "digits:", "number:", "characters:")

# Cross-field rules a property schema cannot express: (field, keyword, message) per problem.
ExtraCheck = Callable[[Mapping[str, Any]], list[tuple[str, str, str]]]


@dataclass
class Playbacks:
    """Playbacks started on a call, by target (a role, or "bridge"). A flow records the
    playback it starts before the request goes out (with an id of its own, so the
    PlaybackFinished that may beat the answer is not missed); the call's task settles it on
    PlaybackFinished, and when its leg goes. Plain synchronous bookkeeping, so it needs no
    round trip. ``expect`` answers a future of the playback's final state ("done", "failed",
    or "gone" when its leg left): what ``play``, ``say`` and ``tts`` wait for."""

    by_id: dict[str, str] = field(default_factory=dict)
    waiting: dict[str, asyncio.Future[str]] = field(default_factory=dict)

    def started(self, playback_id: str, target: str) -> None:
        if playback_id:
            self.by_id[playback_id] = target

    def expect(self, playback_id: str, target: str) -> asyncio.Future[str]:
        """Record a playback about to be requested under ``playback_id``."""
        self.by_id[playback_id] = target
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.waiting[playback_id] = future
        return future

    def finished(self, playback_id: str, state: str = "done") -> None:
        self.by_id.pop(playback_id, None)
        future = self.waiting.pop(playback_id, None)
        if future is not None and not future.done():
            future.set_result(state)

    def target_gone(self, target: str) -> None:
        """``target``'s leg left: its playbacks are over."""
        for playback_id in self.on({target}):
            self.finished(playback_id, "gone")

    def on(self, targets: set[str]) -> list[str]:
        return [pid for pid, target in self.by_id.items() if target in targets]


class Interceptor(Protocol):
    """A feature that takes over some of the call's events for a while (an attended transfer
    takes the transferor's digits and the target's progress). Registered and removed by the
    call's task; ``deliver`` must not block."""

    def wants(self, event: dict[str, Any]) -> bool: ...

    def wants_gone(self, role: str) -> bool: ...

    def deliver(self, item: dict[str, Any] | LegGone) -> None: ...


class EngineHandle(Protocol):
    """What a feature may use of the call engine."""

    @property
    def gateway(self) -> AriGateway | None: ...

    @property
    def settings(self) -> EngineSettings: ...

    @property
    def features(self) -> FeatureRegistry: ...

    def gateway_or_raise(self) -> AriGateway: ...

    def untrack_channel(self, channel_id: str) -> None: ...

    def destroy_bridge_later(self, bridge_id: str) -> None:
        """A bridge whose creation timed out: destroyed once Asterisk has surely handled it."""
        ...

    async def hangup(self, channel_id: str) -> None: ...

    async def send_on(self, channel_id: str, status: str, variable: str) -> None: ...

    async def identity_of_channel(
        self, gateway: AriGateway, channel: dict[str, Any]
    ) -> LegIdentity | None: ...

    def adopt_lone_call(self, snapshot: dict[str, Any], bridge_id: str, role: str) -> CallHandle:
        """A call of one party alone in ``bridge_id`` (set its state before awaiting)."""
        ...


class CallHandle(Protocol):
    """What a feature may do with a call (``calls.call.Call``). Reading is free; changing
    the call's state is for the call's own task: from a flow, wrap changes in ``ask``."""

    id: str
    legs: dict[str, Leg]
    bridge_id: str | None
    collectors: dict[str, Collector]
    playbacks: Playbacks
    feature_state: dict[str, Any]
    interceptors: tuple[Interceptor, ...]

    @property
    def engine(self) -> EngineHandle: ...

    @property
    def phase(self) -> Phase: ...

    def submit(self, event: dict[str, Any] | Message) -> None: ...

    async def ask(self, action: Callable[[], T]) -> T: ...

    async def ask_async(self, action: Callable[[], Awaitable[T]]) -> T: ...

    def post(self, action: Callable[[], Awaitable[object]]) -> None: ...

    async def safely(self, action: Awaitable[Any]) -> None: ...

    async def leaving(self, reason: str) -> None: ...

    async def dial_with_retry(
        self, channel_id: str, caller_id: str, timeout: int | None = None
    ) -> None: ...

    async def owner_of(
        self, snapshot: dict[str, Any]
    ) -> tuple[LegIdentity | None, EffectiveMetaflows | None]: ...

    async def join_bridge(
        self, bridge_id: str, roles: Sequence[str], *, absorb: Collection[str] | None = None
    ) -> None: ...

    def relay_digits(
        self, role: str, digits: Iterable[tuple[str, int]], since: float | None = None
    ) -> None: ...

    def absorbs(self, role: str) -> bool: ...

    # the call's task only (or through ask)
    def other(self, role: str) -> str: ...

    def require_connected(self, presser: str) -> tuple[Leg, Leg]: ...

    def release(self, role: str, released: bool = True) -> None: ...

    def set_phase(self, phase: Phase) -> None: ...

    def set_deadline(self, feature: str, when: float) -> None: ...

    def clear_deadline(self, feature: str) -> None: ...

    def add_leg(self, leg: Leg) -> None: ...

    def drop_leg(self, role: str) -> None: ...

    def replace_leg(self, role: str, leg: Leg, *, resolve: bool) -> None: ...

    async def connect_callee(self, snapshot: dict[str, Any]) -> None: ...

    def mark_gone(self, role: str) -> None: ...

    def track_channel(self, channel_id: str) -> None: ...

    def track_bridge(self, bridge_id: str) -> None: ...

    def add_interceptor(self, interceptor: Interceptor) -> None: ...

    def remove_interceptor(
        self, interceptor: Interceptor, unhandled: Iterable[dict[str, Any] | LegGone] = ()
    ) -> None: ...

    def add_digit_hook(self, hook: DigitHook) -> None: ...

    def remove_digit_hook(self, hook: DigitHook) -> None: ...

    def build_collectors(self) -> None: ...

    def audit_event(
        self, presser: str, owner: str | None, trigger: str, outcome: str
    ) -> MetaflowEvent | None: ...

    def launch(
        self, node: Node, presser: str, injected: dict[str, Any], audit: MetaflowEvent | None
    ) -> None: ...


# Looks at a digit before the collectors (in the call's task); True when it consumed it.
DigitHook = Callable[[CallHandle, str, str], bool]


@dataclass(frozen=True)
class ModuleContext:
    """What a module gets: the call's legs as they were when the flow started, the gateway,
    and the call itself (``call.ask`` to change its state)."""

    call_id: str
    gateway: AriGateway
    presser: str  # the role whose digits (or API request) triggered the flow
    channels: Mapping[str, str]  # role → channel id, for the live parties
    bridge_id: str | None
    data: Mapping[str, Any]
    playbacks: Playbacks
    settings: Any = None
    call: CallHandle | None = None

    def require_call(self) -> CallHandle:
        if self.call is None:
            raise ModuleFailed("this module needs a live call")
        return self.call

    @property
    def peer(self) -> str | None:
        return next((role for role in self.channels if role != self.presser), None)

    def roles(self, which: str) -> list[str]:
        """``self``, ``peer`` or ``both``, relative to the presser."""
        if which == "self":
            return [self.presser] if self.presser in self.channels else []
        if which == "peer":
            return [self.peer] if self.peer is not None else []
        return list(self.channels)

    def with_data(self, data: Mapping[str, Any]) -> ModuleContext:
        return replace(self, data=data)


ModuleRunner = Callable[[ModuleContext], Awaitable[str | None]]
# Checks an API request up front (``POST …/channels/{id}``) for the leg in ``role``: raises the
# API error that fits (``errors.MetaflowsError``) instead of a 202 for a flow that must fail.
ApiCheck = Callable[[CallHandle, str, Mapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class ModuleSpec:
    """One metaflow module: its data schema (defaults written once, here), the coroutine that
    runs it and the cross-field rules its schema cannot express. A module without a runner
    (``None``) is accepted in documents and ends a flow as "unavailable"."""

    schema: Schema
    runner: ModuleRunner | None
    extra_check: ExtraCheck | None = None
    api_check: ApiCheck | None = None

    def default(self, name: str) -> Any:
        """The schema default of field ``name`` (run-time defaults come from here too)."""
        return self.schema["properties"][name]["default"]


StasisEntry = Callable[[EngineHandle, dict[str, Any], list[str]], Awaitable[None]]


class Feature(Protocol):
    """A feature as the core sees it. Hooks run in the call's own task."""

    name: str
    modules: Mapping[str, ModuleSpec]
    events: frozenset[str]  # ARI event types delivered to ``on_event``
    stasis_entries: Mapping[str, StasisEntry]  # Stasis(app,<arg0>,...) this feature serves

    async def on_event(self, call: CallHandle, event: dict[str, Any]) -> None:
        """An ARI event of a type in ``events`` arrived for ``call``."""

    async def on_timer(self, call: CallHandle, now: float) -> None:
        """A deadline this feature set with ``call.set_deadline`` has passed."""

    async def on_leg_gone(self, call: CallHandle, role: str) -> bool:
        """A party left; True when the feature keeps the call going (the core then does
        nothing more)."""

    async def on_leaving(self, call: CallHandle, reason: str) -> None:
        """The call's media is about to leave its bridge (transfer, park, sent on)."""

    async def on_call_end(self, call: CallHandle) -> None:
        """The call ends: release what the feature holds for it."""

    def busy(self, call: CallHandle) -> str | None:
        """Why the call cannot be reshaped now (say, a transfer runs), or None."""

    def describe(self, call: CallHandle, role: str) -> Mapping[str, Any]:
        """Fields of this feature in the channels listing of ``role``'s leg."""


class BaseFeature:
    """No-op hooks; features override what they need."""

    name: str = ""
    modules: Mapping[str, ModuleSpec] = {}
    events: frozenset[str] = frozenset()
    stasis_entries: Mapping[str, StasisEntry] = {}

    async def on_event(self, call: CallHandle, event: dict[str, Any]) -> None:
        return None

    async def on_timer(self, call: CallHandle, now: float) -> None:
        return None

    async def on_leg_gone(self, call: CallHandle, role: str) -> bool:
        return False

    async def on_leaving(self, call: CallHandle, reason: str) -> None:
        return None

    async def on_call_end(self, call: CallHandle) -> None:
        return None

    def busy(self, call: CallHandle) -> str | None:
        return None

    def describe(self, call: CallHandle, role: str) -> Mapping[str, Any]:
        return {}


class FeatureRegistry:
    """The features of this service, built once at wiring time; lookups prepared for the
    call's task (by event type) so dispatch costs one dict lookup."""

    def __init__(self, features: Iterable[Feature]) -> None:
        self.features: tuple[Feature, ...] = tuple(features)
        self.by_name: dict[str, Feature] = {}
        self.modules: dict[str, ModuleSpec] = {}
        self.runners: dict[str, ModuleRunner] = {}
        self.by_event: dict[str, tuple[Feature, ...]] = {}
        self.stasis_entries: dict[str, StasisEntry] = {}
        for feature in self.features:
            if feature.name in self.by_name:
                raise ValueError(f"two features named {feature.name!r}")
            self.by_name[feature.name] = feature
            for module, spec in feature.modules.items():
                if module in self.modules:
                    raise ValueError(f"module {module!r} is in two features")
                self.modules[module] = spec
                if spec.runner is not None:
                    self.runners[module] = spec.runner
            for kind in feature.events:
                self.by_event[kind] = (*self.by_event.get(kind, ()), feature)
            for arg, entry in feature.stasis_entries.items():
                self.stasis_entries[arg] = entry

    def get(self, name: str) -> Feature | None:
        return self.by_name.get(name)


def first_capture(data: Mapping[str, Any]) -> str | None:
    """The code's first capture, if it captured something."""
    captures = data.get("captures")
    first = captures[0] if isinstance(captures, list) and captures else None
    return first if isinstance(first, str) and first and first != NO_MATCH else None


def media_uri(media_id: str) -> str:
    """A bare sound name becomes ``sound:<name>``."""
    return media_id if media_id.startswith(_SCHEMES) else f"sound:{media_id}"


async def run_flow(
    node: Any, context: ModuleContext, runners: Mapping[str, ModuleRunner]
) -> list[tuple[str, str]]:
    """Run a node and then its children; returns (module, outcome) for each step.

    Each node runs with its own data plus the injected context (``dtmf_leg``, ``collected``,
    ``captures``), children included. A failing module ends the flow, not the call: an
    expected failure (ModuleFailed, an ARI error) is "failed"; anything else is a bug, logged
    with its traceback and "error". A module without a runner (a schema only, so far) ends the
    flow as "unavailable", nothing sent to Asterisk.
    """
    injected = {
        k: context.data[k] for k in ("dtmf_leg", "collected", "captures") if k in context.data
    }
    steps: list[tuple[str, str]] = []
    current = node
    while current is not None:
        runner = runners.get(current.module)
        if runner is None:
            logger.warning(
                "call %s: module %s is not available on this server",
                context.call_id,
                current.module,
            )
            steps.append((current.module, "unavailable"))
            return steps
        try:
            branch = await runner(context.with_data({**current.data, **injected}))
        except (ModuleFailed, AriError, AriUnavailable) as exc:
            logger.warning("call %s: module %s failed: %s", context.call_id, current.module, exc)
            steps.append((current.module, "failed"))
            return steps
        except Exception:
            logger.exception(
                "call %s: module %s raised unexpectedly", context.call_id, current.module
            )
            steps.append((current.module, "error"))
            return steps
        steps.append((current.module, "ok"))
        if branch == END_OF_FLOW:
            return steps
        children = current.children
        current = children.get(branch) if branch else None
        if current is None:
            current = children.get("_")
    return steps
