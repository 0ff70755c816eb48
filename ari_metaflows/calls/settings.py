"""Settings of the call engine (a leaf module: the core and the features read them)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CallTimeouts:
    """Ring timeout when ``Stasis(…,dial,…)`` gives none, and the most we ever ring."""

    ring_default: float = 60.0
    ring_max: float = 600.0


@dataclass(frozen=True)
class EngineSettings:
    app: str
    default_account: str | None
    transfer_context: str
    timeouts: CallTimeouts = field(default_factory=CallTimeouts)
    asterisk: str = "default"  # the Asterisk server this engine serves (tags every call)
