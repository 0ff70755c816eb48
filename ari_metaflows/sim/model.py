"""State objects of the simulated Asterisk and their ARI JSON snapshots.

Snapshots have exactly the fields (and field order) real Asterisk 22 sends, as recorded in
``../shared/ari-captures``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

ChannelState = Literal["Down", "Ring", "Ringing", "Up"]

# Q.850 causes Asterisk uses, with its texts (ast_cause2str).
CAUSE_TEXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    26: "Non-selected user clearing",
    28: "Invalid number format (addr incomplete)",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    58: "Bearer capability not available",
    127: "Interworking, unspecified",
}


def dial_status_of_cause(cause: int) -> str:
    """The Dial status Asterisk's dialer gives a channel that hung up with ``cause``
    (ast_hangup_cause_to_dial_status, main/dial.c): anything unnamed is NOANSWER."""
    return {17: "BUSY", 34: "CONGESTION", 3: "CHANUNAVAIL", 20: "CHANUNAVAIL"}.get(
        cause, "NOANSWER"
    )


# DELETE /channels/{id}?reason=… → cause
HANGUP_REASONS = {
    "normal": 16,
    "busy": 17,
    "congestion": 34,
    "no_answer": 19,
    "timeout": 18,
    "rejected": 21,
    "unallocated": 1,
    "normal_unspecified": 31,
    "number_incomplete": 28,
    "codec_mismatch": 58,
    "interworking": 127,
    "failure": 38,
    "answered_elsewhere": 26,
}

SOFTHANGUP_EXPLICIT = 32  # what ChannelHangupRequest.cause carries for an ARI hangup

RECORDING_FORMATS = frozenset(
    {"wav", "wav16", "wav49", "gsm", "ulaw", "alaw", "sln", "sln16", "g722", "au"}
)


def ari_time(moment: float) -> str:
    """Asterisk's timestamp format: 2026-11-23T21:48:46.038+0000."""
    stamp = datetime.fromtimestamp(moment, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}+0000"


@dataclass
class CallerId:
    name: str = ""
    number: str = ""

    def json(self) -> dict[str, str]:
        return {"name": self.name, "number": self.number}


@dataclass
class DialplanLocation:
    context: str = "default"
    exten: str = "s"
    priority: int = 1
    app_name: str = ""
    app_data: str = ""

    def json(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "exten": self.exten,
            "priority": self.priority,
            "app_name": self.app_name,
            "app_data": self.app_data,
        }


@dataclass(frozen=True)
class HeardMedia:
    """A medium a phone heard: its URI, for how long (s) and how its playback ended."""

    media: str
    seconds: float
    state: str  # "done" (played out or stopped), "failed", "continuing" (the next one followed)


@dataclass(eq=False)
class Phone:
    """A SIP endpoint with a person behind it, driven by the test."""

    name: str
    number: str
    display_name: str
    variables: dict[str, str]
    online: bool = True
    # What the phone does when called: "manual" (rings until told), "answer", "busy", "ignore".
    on_call: str = "manual"
    answer_after: float = 0.0
    ring_first: bool = True  # False: answers without a 180 (as sipp's UAS does)
    forward_to: str | None = None  # answers 302 to this phone (followed by Asterisk's dialer)
    channels: list[Channel] = field(default_factory=list)
    heard_dtmf: list[str] = field(default_factory=list)
    heard_media: list[HeardMedia] = field(default_factory=list)  # playbacks, as they ended

    @property
    def ringing_channels(self) -> list[Channel]:
        return [c for c in self.channels if not c.gone and c.state == "Ringing"]

    @property
    def active_channel(self) -> Channel | None:
        live = [c for c in self.channels if not c.gone]
        return live[-1] if live else None


@dataclass(eq=False)
class Channel:
    id: str
    name: str
    tech: str  # "PJSIP" or "Local"
    resource: str  # endpoint name, or exten@context for Local
    created: float
    state: ChannelState = "Down"
    caller: CallerId = field(default_factory=CallerId)
    connected: CallerId = field(default_factory=CallerId)
    dialplan: DialplanLocation = field(default_factory=DialplanLocation)
    protocol_id: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    app: str | None = None  # the Stasis application the channel is in
    subscribers: set[str] = field(default_factory=set)  # apps subscribed by creating it
    create_app: str | None = None
    create_args: list[str] = field(default_factory=list)
    bridge: Bridge | None = None
    absorb_dtmf: bool = False
    dtmf_out_until: float = 0.0  # loop time the digits sent to it (sendDTMF) are played until
    bridge_mute: bool = False
    phone: Phone | None = None  # the phone at the far end of a PJSIP channel
    far: Channel | None = None  # the channel at the other end of a dialplan Dial / Local
    moh_class: str | None = None
    ringing: bool = False
    silence: bool = False
    held: bool = False
    muted: set[str] = field(default_factory=set)  # "in", "out"
    playbacks: list[Playback] = field(default_factory=list)
    dial_started: bool = False
    originated: bool = False  # POST /channels[/{id}]: dialed at once, in Stasis once answered
    dial_timer: asyncio.TimerHandle | None = None
    dial_caller: Channel | None = None
    gone: bool = False
    hangup_cause: int | None = None
    history: list[str] = field(default_factory=list)  # dialplan applications run
    # A snoop channel (POST /channels/{id}/snoop): the channel it spies on, and how.
    spied: Channel | None = None
    spy: str = "none"  # what of the spied channel it hears: in (says), out (hears), both
    whisper: str = "none"
    snoops: list[Channel] = field(default_factory=list)  # snoop channels spying on this one

    @property
    def apps(self) -> set[str]:
        apps = set(self.subscribers)
        if self.app is not None:
            apps.add(self.app)
        return apps

    def json(self, channelvars: tuple[str, ...]) -> dict[str, Any]:
        snapshot: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "protocol_id": self.protocol_id,
            "caller": self.caller.json(),
            "connected": self.connected.json(),
            "accountcode": "",
            "dialplan": self.dialplan.json(),
            "creationtime": ari_time(self.created),
            "language": "en",
        }
        if channelvars:
            snapshot["channelvars"] = {name: self.variables.get(name, "") for name in channelvars}
        return snapshot


@dataclass(eq=False)
class Bridge:
    id: str
    name: str
    types: tuple[str, ...]
    created: float
    subscribers: set[str] = field(default_factory=set)
    channels: list[Channel] = field(default_factory=list)
    moh_class: str | None = None
    playbacks: list[Playback] = field(default_factory=list)
    recordings: list[LiveRecording] = field(default_factory=list)
    gone: bool = False

    @property
    def bridge_type(self) -> str:
        return "holding" if "holding" in self.types else "mixing"

    @property
    def native(self) -> bool:
        """Two SIP channels in a mixing bridge without dtmf_events: media (and DTMF) bypass
        the core, so Asterisk sees no digits at all."""
        return (
            self.bridge_type == "mixing"
            and "dtmf_events" not in self.types
            and "proxy_media" not in self.types
            and len(self.channels) == 2
            and all(c.tech == "PJSIP" for c in self.channels)
            and not self.playbacks
            and not self.recordings
        )

    @property
    def technology(self) -> str:
        if self.bridge_type == "holding":
            return "holding_bridge"
        if len(self.channels) > 2:
            return "softmix"
        if self.native:
            return "native_rtp"
        return "simple_bridge"

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "technology": self.technology,
            "bridge_type": self.bridge_type,
            "bridge_class": "stasis",
            "creator": "Stasis",
            "name": self.name,
            "channels": [c.id for c in self.channels],
            "creationtime": ari_time(self.created),
            "video_mode": "talker",
        }


@dataclass(eq=False)
class Playback:
    id: str
    media: list[str]
    target: Channel | Bridge
    language: str = "en"
    state: str = "queued"
    index: int = 0
    timer: asyncio.TimerHandle | None = None
    sounding_since: float | None = None  # monotonic time the current media began to sound

    @property
    def media_uri(self) -> str:
        return self.media[min(self.index, len(self.media) - 1)]

    @property
    def target_uri(self) -> str:
        kind = "bridge" if isinstance(self.target, Bridge) else "channel"
        return f"{kind}:{self.target.id}"

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "media_uri": self.media_uri,
            "target_uri": self.target_uri,
            "language": self.language,
            "state": self.state,
        }


@dataclass(eq=False)
class LiveRecording:
    name: str
    format: str
    target: Channel | Bridge
    state: str = "queued"
    started: float = 0.0
    ended: float = 0.0
    muted: bool = False
    muted_seconds: float = 0.0
    muted_since: float | None = None
    timer: asyncio.TimerHandle | None = None
    heard: set[str] = field(default_factory=set)  # phone names whose voice was recorded
    cause: str | None = None

    @property
    def target_uri(self) -> str:
        kind = "bridge" if isinstance(self.target, Bridge) else "channel"
        return f"{kind}:{self.target.id}"

    @property
    def duration(self) -> int:
        end = self.ended or time.time()
        return int(end - self.started) if self.started else 0

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "format": self.format,
            "state": self.state,
            "target_uri": self.target_uri,
        }
        if self.state in ("done", "failed", "canceled"):
            data["duration"] = self.duration
        if self.cause is not None:
            data["cause"] = self.cause
        return data


@dataclass(eq=False)
class StoredRecording:
    name: str
    format: str
    duration: float
    muted_seconds: float
    heard: frozenset[str]

    def json(self) -> dict[str, Any]:
        return {"name": self.name, "format": self.format}
