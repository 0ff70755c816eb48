"""``transfer``: blind or attended, to the first capture or ``target`` (SPEC §6)."""

from __future__ import annotations

from ..calls.transfer import TransferRequest
from .base import ModuleContext, ModuleFailed, first_capture
from .play import media_uri


def extension_of(data: dict[str, object]) -> str:
    first = first_capture(data)
    if first is not None:
        return first
    target = data.get("target")
    if isinstance(target, str) and target:
        return target
    raise ModuleFailed("transfer has no target: no capture and no data.target")


async def run(ctx: ModuleContext) -> str | None:
    data = dict(ctx.data)
    extension = extension_of(data)
    call = ctx.require_call()
    if data.get("transfer_type", "blind") != "attended":
        return await call.blind_transfer(ctx.presser, extension)
    timeout_ms = data.get("timeout", 20000)
    request = TransferRequest(
        extension=extension,
        attended=True,
        takeback_dtmf=str(data.get("takeback_dtmf") or "*1"),
        moh_class=data.get("moh") if isinstance(data.get("moh"), str) else None,
        ringback=_ringback(data.get("ringback")),
        timeout=attended_timeout(timeout_ms),
    )
    return await call.attended_transfer(ctx.presser, request)


def attended_timeout(timeout_ms: object) -> float:
    """Seconds to ring the target: Kazoo's schema allows any integer, so it is clamped to
    1 s … 10 min (absent or not positive: 20 s)."""
    if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or timeout_ms <= 0:
        return 20.0
    return min(max(timeout_ms, 1000), 600_000) / 1000


def _ringback(value: object) -> str | None:
    """A media to play instead of the ringing tone: a sound name or any Asterisk media URI."""
    if not isinstance(value, str) or not value:
        return None
    return media_uri(value)
