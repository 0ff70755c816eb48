"""What goes into a call's mailbox besides Asterisk's events.

ARI events stay the dicts Asterisk sent (parsing them into classes would cost the DTMF path an
allocation per event); every message the service itself sends a call is one of these classes,
handled by the call's own task in order with the events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..metaflows.documents import Node


class Tick:
    """The call's timer fired: look at the deadlines (one shared instance, no allocation)."""

    __slots__ = ()


TICK = Tick()


@dataclass(frozen=True, slots=True)
class Refresh:
    """Metaflows of ``account`` (None: of every account) changed: resolve them again."""

    account: str | None


@dataclass(frozen=True, slots=True)
class LegGone:
    """A resync found the leg's channel gone from Asterisk."""

    role: str


@dataclass(frozen=True, slots=True)
class Resolve:
    """Find the owner and metaflows of the leg in ``role`` again (it has a new channel)."""

    role: str
    snapshot: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Adopted:
    """A call adopted after a resync: find the owners of its two legs."""

    snapshots: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class RunNode:
    """The API runs a metaflow node on the leg in ``role``, as if its owner pressed a code."""

    node: Node
    role: str


@dataclass(frozen=True, slots=True)
class Ask:
    """Run ``action`` in the call's own task (the only one that changes the call's state);
    its result or exception goes to ``reply`` when someone waits for it. With ``awaits``,
    ``action`` returns an awaitable, which the call's task awaits."""

    action: Callable[[], Any]
    reply: asyncio.Future[Any] | None = None
    awaits: bool = False


Message = Tick | Refresh | LegGone | Resolve | Adopted | RunNode | Ask
