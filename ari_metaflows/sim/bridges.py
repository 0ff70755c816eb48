"""Stasis bridges: create, join, leave, destroy, and the events each step gives."""

from __future__ import annotations

import time
import uuid

from .base import SimError
from .media import MediaSim
from .model import Bridge, Channel


class BridgesSim(MediaSim):
    def create_bridge(self, types: str | None, bridge_id: str | None, name: str) -> Bridge:
        """A Stasis bridge; an application is subscribed to it once one of its channels joins."""
        if bridge_id is not None and bridge_id in self.bridges:
            raise SimError(409, "Bridge with the same bridgeId already exists")
        kinds = tuple(t.strip() for t in (types or "mixing").split(",") if t.strip())
        allowed = {"mixing", "holding", "dtmf_events", "proxy_media", "video_sfu", "video_single"}
        if not kinds or any(kind not in allowed for kind in kinds):
            raise SimError(400, "Invalid bridge type")
        bridge = Bridge(
            id=bridge_id or str(uuid.uuid4()),
            name=name,
            types=kinds,
            created=time.time(),
        )
        self.bridges[bridge.id] = bridge
        self._touch()
        return bridge

    def require_bridge(self, bridge_id: str) -> Bridge:
        bridge = self.bridges.get(bridge_id)
        if bridge is None or bridge.gone:
            raise SimError(404, "Bridge not found")
        return bridge

    def add_to_bridge(
        self, bridge: Bridge, channel_ids: list[str], absorb: bool, mute: bool
    ) -> None:
        channels = []
        for channel_id in channel_ids:
            channel = self.channels.get(channel_id)
            if channel is None or channel.gone:
                raise SimError(400, "Channel not found")
            if channel.app is None:
                raise SimError(422, "Channel not in Stasis application")
            channels.append(channel)
        for channel in channels:
            # Asterisk (res/stasis/control.c) departs whatever bridge the channel is in, this
            # one included, and imparts it again with the new features (absorbDTMF, mute).
            if channel.bridge is not None:
                self._leave_bridge(channel)
            channel.bridge = bridge
            channel.absorb_dtmf = absorb
            channel.bridge_mute = mute
            channel.ringing = False
            bridge.channels.append(channel)
            bridge.subscribers |= channel.apps
            self._bridge_event(bridge, channel, "ChannelEnteredBridge")
            self._record_heard(bridge)
        self._touch()

    def remove_from_bridge(self, bridge: Bridge, channel_id: str) -> None:
        channel = self.channels.get(channel_id)
        if channel is None or channel.gone:
            raise SimError(400, "Channel not found")
        if channel.bridge is not bridge:
            raise SimError(422, "Channel not in this bridge")
        self._leave_bridge(channel)
        self._touch()

    def _leave_bridge(self, channel: Channel) -> None:
        bridge = channel.bridge
        if bridge is None:
            return
        # Asterisk reports the technology the bridge had while the channel was in it.
        technology = bridge.technology
        bridge.channels.remove(channel)
        channel.bridge = None
        channel.absorb_dtmf = False
        channel.bridge_mute = False
        self._bridge_event(bridge, channel, "ChannelLeftBridge", technology)

    def _bridge_event(
        self, bridge: Bridge, channel: Channel, event_type: str, technology: str | None = None
    ) -> None:
        snapshot = bridge.json()
        if technology is not None:
            snapshot["technology"] = technology
        self._emit(
            channel.apps | bridge.subscribers,
            event_type,
            bridge=snapshot,
            channel=self.snapshot(channel),
        )

    def destroy_bridge(self, bridge: Bridge) -> None:
        for playback in list(bridge.playbacks):
            self._finish_playback(playback, "done")
        for recording in list(bridge.recordings):
            self._finish_recording(recording, "done")
        for channel in list(bridge.channels):
            self._leave_bridge(channel)
        bridge.gone = True
        self.bridges.pop(bridge.id, None)
        self._emit(bridge.subscribers, "BridgeDestroyed", bridge=bridge.json())
        self._touch()
