"""A call's legs: roles, phases and what the call knows of each channel."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..metaflows.documents import EffectiveMetaflows
from ..metaflows.resolver import LegIdentity


class Role(StrEnum):
    """The part a leg plays in its call. String-valued: the API shows the value."""

    CALLER = "caller"
    CALLEE = "callee"
    TRANSFER_TARGET = "transfer_target"  # rings (then consults) during an attended transfer
    # rings during an intercept or a move (one per device: "takeover-1", "takeover-2", ...),
    # then takes the intercepted or moved leg's place
    TAKEOVER = "takeover"
    RECORDER = "recorder"  # a snoop channel recording a party's side (never a party)


class Phase(StrEnum):
    """Where a call is: dialing → connected (⇄ parked) → ended."""

    DIALING = "dialing"
    CONNECTED = "connected"
    PARKED = "parked"
    ENDED = "ended"


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
    party: bool = True  # takes part in the conversation (a ringing transfer target does not)
    bridge: str | None = None  # the bridge Asterisk says the channel is in (Entered/LeftBridge)
    absorbed_in: str | None = None  # the bridge it joined with absorbDTMF (SPEC §5.6)

    @property
    def absorbed(self) -> bool:
        """Its digits reach the other members only when the app relays them."""
        return self.absorbed_in is not None and self.absorbed_in == self.bridge
