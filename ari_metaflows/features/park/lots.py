"""Per-account parking lots (``park`` / ``Stasis(metaflows,unpark,<slot>)``; SPEC §6).

Slots are claimed synchronously on the event loop (no await between looking and taking), so two
parks racing for the lowest free slot never get the same one. The parked party stays in its
call's bridge with music on hold; the call's owner task runs its timeout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ...errors import SlotUnavailable

if TYPE_CHECKING:
    from ...calls.feature import CallHandle

_SUFFIX = re.compile(r"-[0-9a-f]{8}(;[12])?$")


@dataclass(frozen=True)
class SlotRange:
    first: int = 701
    last: int = 720

    def __contains__(self, slot: object) -> bool:
        return isinstance(slot, str) and slot.isdigit() and self.first <= int(slot) <= self.last

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


def parse_slot_range(text: str) -> SlotRange:
    first, sep, last = text.partition("-")
    if not (sep and first.isdigit() and last.isdigit()) or int(first) > int(last):
        raise ValueError(f"expected FIRST-LAST slot numbers, got {text!r}")
    if int(last) - int(first) >= 10000:
        raise ValueError("a parking lot has at most 10000 slots")
    return SlotRange(int(first), int(last))


def dial_string_of(channel_name: str) -> str:
    """``PJSIP/alice-0000001a`` → ``PJSIP/alice``;
    ``Local/12@ctx-0000001b;2`` → ``Local/12@ctx``."""
    return _SUFFIX.sub("", channel_name)


@dataclass(frozen=True)
class ParkedParty:
    """What the cluster's slot row keeps of a parked call: every instance lists it, and the
    next holder of its Asterisk adopts it from there."""

    channel_id: str
    channel_name: str
    call_id: str
    parker: str  # the parker's dial string (the timeout rings it back)
    timeout: float
    bridge_id: str | None


@dataclass(frozen=True)
class InheritedSlot:
    """A slot the previous holder of this Asterisk took: its parked party may still wait in
    its bridge (``remaining``: seconds left before the park timeout)."""

    account_id: str
    slot: str
    party: ParkedParty
    parked_at: float  # Unix seconds
    remaining: float


class SharedSlots(Protocol):
    """Slots unique per account across several instances (the cluster's ``parking_slots``
    table): ``claim`` answers the slot taken (``wanted``, else the first free one of
    ``slots``) or None when it is taken / the lot is full; ``release`` gives it back;
    ``inherited`` hands over (once) the slots of a previous holder of this Asterisk."""

    async def claim(
        self, account_id: str, wanted: str | None, slots: SlotRange, party: ParkedParty
    ) -> str | None: ...

    def inherited(self) -> dict[str, InheritedSlot]:
        """Channel id → the slot its previous holder took; emptied by the call."""
        ...

    def release(self, account_id: str, slot: str) -> None:
        """Give the slot back (in the background: called from the call's task)."""
        ...


class ParkingLots:
    def __init__(self, slots: SlotRange) -> None:
        self.slots = slots
        self._lots: dict[str, dict[str, CallHandle]] = {}

    def claim(self, account_id: str, wanted: str | None, call: CallHandle) -> str:
        lot = self._lots.setdefault(account_id, {})
        if wanted is not None:
            if wanted not in self.slots:
                raise SlotUnavailable(f"slot {wanted} is not in the parking lot ({self.slots})")
            if wanted in lot:
                raise SlotUnavailable(f"slot {wanted} is taken")
            lot[wanted] = call
            return wanted
        for number in range(self.slots.first, self.slots.last + 1):
            if str(number) not in lot:
                lot[str(number)] = call
                return str(number)
        raise SlotUnavailable("the parking lot is full")

    def release(self, account_id: str, slot: str, call: CallHandle) -> None:
        lot = self._lots.get(account_id, {})
        if lot.get(slot) is call:
            del lot[slot]

    def clear(self) -> None:
        """Forget every slot (this instance no longer serves their Asterisk)."""
        self._lots.clear()

    def get(self, account_id: str, slot: str) -> CallHandle | None:
        return self._lots.get(account_id, {}).get(slot)

    def of_account(self, account_id: str) -> dict[str, CallHandle]:
        return dict(sorted(self._lots.get(account_id, {}).items(), key=lambda kv: int(kv[0])))
