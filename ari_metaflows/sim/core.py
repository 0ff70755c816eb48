"""The simulated Asterisk: channels, bridges, media, a tiny dialplan, phones, Stasis apps.

Behaviour follows what real Asterisk 22 does where the call engine depends on it (see the
captures in ``../shared/ari-captures``):

* ``ChannelDtmfReceived`` fires once per digit, at the digit's end, only on the channel that read
  it; in a bridge the digit is then written to the other members (no event there) unless the
  channel was added with ``absorbDTMF``. Two SIP channels in a ``mixing`` bridge without
  ``dtmf_events`` are bridged natively: no DTMF event at all.
* An ARI hangup gives ``ChannelHangupRequest {cause: 32, soft: true}`` (the soft-hangup flag),
  ``ChannelLeftBridge``, ``StasisEnd``, ``ChannelDestroyed {cause}``; a phone hanging up gives a
  ``ChannelHangupRequest`` without cause.
* A channel made with ``/channels/create`` gets ``StasisStart`` only once it answers.
* Commands answer at once; their effects arrive as events.
* Events for an application with no websocket are dropped; calls go on.
"""

from __future__ import annotations

from .base import DEFAULT_CHANNELVARS, AppConnection, SimError, Timing
from .dialplan import (
    Application,
    DialPhone,
    Dialplan,
    DialplanAction,
    DialplanSim,
    Hangup,
    StasisApp,
)
from .media import MEDIA_SCHEMES, wav_of_silence
from .model import Bridge, Channel, Phone

__all__ = [
    "DEFAULT_CHANNELVARS",
    "MEDIA_SCHEMES",
    "AppConnection",
    "Application",
    "Bridge",
    "Channel",
    "DialPhone",
    "Dialplan",
    "DialplanAction",
    "Hangup",
    "Phone",
    "SimError",
    "SimulatedAsterisk",
    "StasisApp",
    "Timing",
    "wav_of_silence",
]


class SimulatedAsterisk(DialplanSim):
    """The whole simulated Asterisk: every resource layer, and what the people on it hear.

    Layers, each in its own module: ``base`` (shared state, events, applications) →
    ``faults`` → ``media`` (playbacks, recordings) → ``bridges`` → ``channels`` → ``dialplan``.
    """

    def __init__(
        self,
        *,
        channelvars: tuple[str, ...] = DEFAULT_CHANNELVARS,
        timing: Timing | None = None,
        entity_id: str = "02:fc:00:00:00:01",
    ) -> None:
        super().__init__(channelvars=channelvars, timing=timing or Timing(), entity_id=entity_id)

    # -- what people hear (observations for tests) ------------------------------------------

    def hears(self, channel: Channel) -> tuple[str, str]:
        """What the person behind ``channel`` hears: (kind, detail)."""
        if channel.gone:
            return ("hungup", "")
        if channel.muted & {"out"} or channel.silence:
            return ("silence", "")
        if channel.playbacks and channel.playbacks[0].state == "playing":
            media = channel.playbacks[0].media_uri
            if media.startswith("tone:ring"):
                return ("ringing", "")  # a ringing tone is ringing to the listener
            return ("playback", media)
        if channel.moh_class is not None:
            return ("moh", channel.moh_class)
        if channel.held:  # chan_pjsip plays the default class to a held channel
            return ("moh", "default")
        if channel.ringing and channel.state != "Up":
            return ("ringing", "")
        bridge = channel.bridge
        if bridge is not None:
            playing = [p for p in bridge.playbacks if p.state == "playing"]
            if playing:
                return ("playback", playing[0].media_uri)
            if bridge.moh_class is not None:
                return ("moh", bridge.moh_class)
            others = sorted(
                self.party_name(c)
                for c in bridge.channels
                if c is not channel and "in" not in c.muted and not c.bridge_mute
            )
            return ("party", ",".join(others)) if others else ("silence", "")
        if channel.far is not None and channel.far.state == "Up" and channel.state == "Up":
            source = channel.far
            if source.tech == "Local" and source.app is not None:
                return self.hears(source)  # what the Local channel gets, the phone hears
            return ("party", self.party_name(source))
        if channel.far is not None and channel.far.state != "Up":
            return ("ringing", "")
        if channel.app is None and channel.dialplan.app_name not in ("", "Stasis", "Dial"):
            return ("application", channel.dialplan.app_name)
        return ("silence", "")

    def phone_hears(self, phone: Phone) -> tuple[str, str]:
        channel = phone.active_channel
        return ("idle", "") if channel is None else self.hears(channel)
