"""What a module gets to act on a call, and how a metaflow node runs (SPEC §6)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from ..ari.gateway import AriGateway

if TYPE_CHECKING:
    from ..calls.transfer import TransferRequest

logger = logging.getLogger(__name__)


class ModuleFailed(Exception):
    """A module could not do its job; the flow stops, the call goes on."""


@dataclass
class Playbacks:
    """Playbacks started on a call, by target ("caller", "callee" or "bridge")."""

    by_id: dict[str, str] = field(default_factory=dict)

    def started(self, playback_id: str, target: str) -> None:
        if playback_id:
            self.by_id[playback_id] = target

    def finished(self, playback_id: str) -> None:
        self.by_id.pop(playback_id, None)

    def on(self, targets: set[str]) -> list[str]:
        return [pid for pid, target in self.by_id.items() if target in targets]


class CallActions(Protocol):
    """What a module may ask of the call it runs on, beyond plain ARI requests."""

    async def blind_transfer(self, presser: str, extension: str) -> str: ...

    async def attended_transfer(self, presser: str, request: TransferRequest) -> str: ...

    async def record(self, presser: str, action: str, options: dict[str, Any]) -> str: ...

    async def hold(self, presser: str, moh_class: str | None, unhold_key: str) -> str: ...

    async def resume(self, presser: str) -> str: ...

    async def send_on(
        self, presser: str, roles: list[str], context: str, extension: str, priority: int
    ) -> str: ...

    async def park(self, presser: str, wanted: str | None, timeout: float) -> str: ...


@dataclass(frozen=True)
class ModuleContext:
    call_id: str
    gateway: AriGateway
    presser: str  # the role whose digits (or API request) triggered the flow
    channels: Mapping[str, str]  # role → channel id, for live legs
    bridge_id: str | None
    data: Mapping[str, Any]
    playbacks: Playbacks
    settings: Any = None
    call: CallActions | None = None

    def require_call(self) -> CallActions:
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

NO_MATCH = "no_match"  # Kazoo's capture sentinel: "the code captured nothing"


def first_capture(data: Mapping[str, Any]) -> str | None:
    """The code's first capture, if it captured something."""
    captures = data.get("captures")
    first = captures[0] if isinstance(captures, list) and captures else None
    return first if isinstance(first, str) and first and first != NO_MATCH else None


async def run_flow(
    node: Any, context: ModuleContext, registry: Mapping[str, ModuleRunner]
) -> list[tuple[str, str]]:
    """Run a node and then its children; returns (module, outcome) for each step.

    Each node runs with its own data plus the injected context (``dtmf_leg``, ``collected``,
    ``captures``), children included. A failing module ends the flow, not the call.
    """
    injected = {
        k: context.data[k] for k in ("dtmf_leg", "collected", "captures") if k in context.data
    }
    steps: list[tuple[str, str]] = []
    current = node
    while current is not None:
        runner = registry.get(current.module)
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
        except Exception as exc:
            logger.warning("call %s: module %s failed: %s", context.call_id, current.module, exc)
            steps.append((current.module, "failed"))
            return steps
        steps.append((current.module, "ok"))
        children = current.children
        current = children.get(branch) if branch else None
        if current is None:
            current = children.get("_")
    return steps
