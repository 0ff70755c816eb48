"""Transfer feature: ``transfer``, blind or attended, to the first capture or ``target``
(SPEC §6).

Per-call state: the running ``AttendedTransfer`` in ``call.feature_state["transfer"]``; it is
also the call's interceptor while it runs and its target a leg of the call. A blind transfer
keeps no state.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from ...calls.feature import (
    EXTENSION_RE,
    BaseFeature,
    CallHandle,
    EngineHandle,
    ModuleContext,
    ModuleSpec,
    first_capture,
    media_uri,
)
from ...errors import AriError, AriUnavailable, ModuleFailed
from .attended import AttendedTransfer, TransferRequest
from .schemas import (
    MAX_TIMEOUT_MS,
    MIN_TIMEOUT_MS,
    TAKEBACK_DTMF,
    TIMEOUT_MS,
    TRANSFER,
    TRANSFER_TYPE,
)

logger = logging.getLogger(__name__)

NAME = "transfer"
__all__ = [
    "AttendedTransfer",
    "TransferFeature",
    "TransferRequest",
    "attended_timeout",
    "transfer_of",
]


def transfer_of(call: CallHandle) -> AttendedTransfer | None:
    """The attended transfer running on the call, if any."""
    transfer: AttendedTransfer | None = call.feature_state.get(NAME)
    return transfer


def extension_of(data: dict[str, object]) -> str:
    first = first_capture(data)
    if first is not None:
        return first
    target = data.get("target")
    if isinstance(target, str) and target:
        return target
    raise ModuleFailed("transfer has no target: no capture and no data.target")


def _ringback(value: object) -> str | None:
    """A media to play instead of the ringing tone: a sound name or any Asterisk media URI."""
    if not isinstance(value, str) or not value:
        return None
    return media_uri(value)


async def transfer_module(ctx: ModuleContext) -> str | None:
    data = dict(ctx.data)
    extension = extension_of(data)
    call = ctx.require_call()
    if data.get("transfer_type", TRANSFER_TYPE) != "attended":
        return await blind_transfer(call, ctx.presser, extension)
    request = TransferRequest(
        extension=extension,
        attended=True,
        takeback_dtmf=str(data.get("takeback_dtmf") or TAKEBACK_DTMF),
        moh_class=data.get("moh") if isinstance(data.get("moh"), str) else None,
        ringback=_ringback(data.get("ringback")),
        timeout=attended_timeout(data.get("timeout")),
    )
    return await attended_transfer(call, ctx.presser, request)


def attended_timeout(timeout_ms: object) -> float:
    """Seconds to ring the target: Kazoo's schema allows any integer, so it is clamped to
    1 s … 10 min (absent or not positive: 20 s)."""
    if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or timeout_ms <= 0:
        return TIMEOUT_MS / 1000
    return min(max(timeout_ms, MIN_TIMEOUT_MS), MAX_TIMEOUT_MS) / 1000


async def blind_transfer(call: CallHandle, presser: str, extension: str) -> str:
    """The other party goes on in the dialplan at the transfer context; the presser is hung
    up."""
    if not EXTENSION_RE.match(extension):
        raise ModuleFailed(f"{extension!r} is not a dialable extension")
    transferor, transferee = await call.ask(partial(call.require_connected, presser))
    gateway = call.engine.gateway_or_raise()
    context = call.engine.settings.transfer_context
    await call.leaving("stopped for a transfer")
    await call.ask(partial(call.release, transferee.role, True))
    try:
        await gateway.continue_in_dialplan(
            transferee.channel_id, context=context, extension=extension, priority=1
        )
    except (AriError, AriUnavailable) as exc:
        await call.ask(partial(call.release, transferee.role, False))
        raise ModuleFailed(f"cannot transfer to {extension}: {exc}") from exc
    logger.info(
        "call %s: blind transfer of %s to %s@%s", call.id, transferee.name, extension, context
    )
    await call.safely(gateway.hangup(transferor.channel_id))
    return "transferred"


async def attended_transfer(call: CallHandle, presser: str, request: TransferRequest) -> str:
    if not EXTENSION_RE.match(request.extension):
        raise ModuleFailed(f"{request.extension!r} is not a dialable extension")

    def begin() -> AttendedTransfer:
        call.require_connected(presser)
        transfer = AttendedTransfer(call, presser, call.other(presser), request)
        call.feature_state[NAME] = transfer
        call.add_interceptor(transfer)
        call.add_leg(transfer.target_leg())
        return transfer

    transfer = await call.ask(begin)
    try:
        return await transfer.run()
    finally:
        if transfer_of(call) is transfer:
            await transfer.finished()


async def _hang_up_stray(engine: EngineHandle, channel: dict[str, Any], args: list[str]) -> None:
    """A transfer target whose call already ended."""
    await engine.hangup(channel["id"])


class TransferFeature(BaseFeature):
    name = NAME

    def __init__(self) -> None:
        self.stasis_entries = {"transfer": _hang_up_stray}
        self.modules = {"transfer": ModuleSpec(TRANSFER, transfer_module)}

    def busy(self, call: CallHandle) -> str | None:
        if transfer_of(call) is not None:
            return "a transfer is already running on this call"
        return None

    def describe(self, call: CallHandle, role: str) -> dict[str, Any]:
        transfer = transfer_of(call)
        return {
            "transfer": (
                None
                if transfer is None
                else {"state": transfer.state, "extension": transfer.request.extension}
            )
        }
