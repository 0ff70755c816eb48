"""The features of the service, one folder each; ``build_registry`` collects them.

Each folder holds a feature's module data schemas (with their defaults, written once), its
per-call state, its module entry points and its reaction to the events it asked for, plugged
into the call core through ``calls.feature.Feature``. Features import the core, never the
reverse. See docs/architecture.md, "Adding a feature".
"""

from __future__ import annotations

from ..calls.feature import Feature, FeatureRegistry
from ..devices import DeviceDirectory
from ..recordings import RecordingJournal
from .dialplan import DialplanFeature
from .hold import HoldFeature
from .hold_control import HoldControlFeature
from .media import MediaFeature
from .park import TIMEOUT_CONTEXT, ParkFeature, SlotRange, parse_slot_range
from .pivot import PivotFeature
from .recording import RecordingFeature
from .sound_touch import SoundTouchFeature
from .takeover import TakeoverFeature
from .transfer import TransferFeature
from .tts import TtsFeature
from .tts.media import SpeechMedia


def build_registry(
    *,
    recordings: RecordingJournal | None = None,
    park_slots: SlotRange | str = "701-720",
    park_timeout_context: str = TIMEOUT_CONTEXT,
    devices: DeviceDirectory | None = None,
    speech: SpeechMedia | None = None,
) -> FeatureRegistry:
    """Every feature of this server, in the order their fields appear in a channel's view.
    Without ``devices`` (no database), intercept and move fail with a clear reason."""
    slots = parse_slot_range(park_slots) if isinstance(park_slots, str) else park_slots
    features: list[Feature] = [
        MediaFeature(),
        DialplanFeature(),
        RecordingFeature(recordings),
        HoldFeature(),
        ParkFeature(slots, park_timeout_context),
        TransferFeature(),
        TakeoverFeature(devices),
        TtsFeature(speech),
        PivotFeature(),
        HoldControlFeature(),
        SoundTouchFeature(),
    ]
    return FeatureRegistry(features)


__all__ = ["build_registry"]
