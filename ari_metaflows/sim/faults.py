"""Faults tests inject into the simulated Asterisk: refused dials, slow or garbled answers,
a restart."""

from __future__ import annotations

import re
import time
from typing import Any

from .base import SimBase


class FaultsSim(SimBase):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # Asterisk 22 sometimes refuses a dial right after the create (409, not in Stasis
        # yet); tests set how many of the next dials to refuse that way.
        self.dial_refusals = 0
        # (method, path regex) → seconds every matching request is held before it is served.
        self.stalls: dict[tuple[str, str], float] = {}
        # (method, path regex) → seconds for the next matching requests, one each, in order
        # (then none): requests in flight that a later one could overtake.
        self.delays: dict[tuple[str, str], list[float]] = {}
        # (method, path regex) → (status, body) answered instead: a broken Asterisk or proxy.
        self.garbled: dict[tuple[str, str], tuple[int, str]] = {}

    def stalls_for(self, method: str, path: str) -> list[float]:
        """The holds (seconds) a request must wait out before it is served, in order."""
        holds = [
            seconds
            for (verb, pattern), seconds in list(self.stalls.items())
            if verb == method and re.fullmatch(pattern, path)
        ]
        for (verb, pattern), queued in list(self.delays.items()):
            if queued and verb == method and re.fullmatch(pattern, path):
                holds.append(queued.pop(0))
        return holds

    def garbled_for(self, method: str, path: str) -> tuple[int, str] | None:
        """The (status, body) answered instead of the real answer, if a fault says so."""
        for (verb, pattern), answer in list(self.garbled.items()):
            if verb == method and re.fullmatch(pattern, path):
                return answer
        return None

    def restart(self) -> None:
        """Asterisk restarts: every call and websocket is gone, a new startup time."""
        for connection in list(self.connections):
            self.disconnect_app(connection)
        for channel in list(self.channels.values()):
            channel.gone = True
            if channel.dial_timer is not None:
                channel.dial_timer.cancel()
        for playback in self.playbacks.values():
            if playback.timer is not None:
                playback.timer.cancel()
        self.remote_media.cancel()
        for recording in self.live_recordings.values():
            if recording.timer is not None:
                recording.timer.cancel()
        self.channels.clear()
        self.bridges.clear()
        self.playbacks.clear()
        self.live_recordings.clear()
        self.known_apps.clear()
        self.startup_time = time.time()
        self._epoch = int(self.startup_time) + 1
        self._touch()
