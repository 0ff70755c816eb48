"""Media on channels and bridges: playbacks (queued per target) and live/stored recordings."""

from __future__ import annotations

import time
import uuid

from .base import SimError
from .faults import FaultsSim
from .model import (
    RECORDING_FORMATS,
    Bridge,
    Channel,
    HeardMedia,
    LiveRecording,
    Playback,
    StoredRecording,
)
from .remote_media import remote_url

MEDIA_SCHEMES = ("sound", "recording", "number", "digits", "characters", "tone")


class MediaSim(FaultsSim):
    def _media_duration(self, uri: str) -> float:
        scheme, _, rest = uri.partition(":")
        if scheme == "tone":
            return self.timing.tone
        if scheme in ("digits", "characters", "number"):
            return self.timing.per_character * max(len(rest), 1)
        if scheme == "recording":
            stored = self.stored_recordings.get(rest)
            return stored.duration if stored else self.timing.default_sound
        return self.timing.sounds.get(rest, self.timing.default_sound)

    def play(
        self, target: Channel | Bridge, media: str, lang: str | None, playback_id: str | None
    ) -> Playback:
        if playback_id is not None and playback_id in self.playbacks:
            raise SimError(409, "Playback with the same id already exists")
        uris = [m for m in media.split(",") if m]
        playback = Playback(
            id=playback_id or str(uuid.uuid4()),
            media=uris or [media],
            target=target,
            language=lang or "en",
        )
        self.playbacks[playback.id] = playback
        target.playbacks.append(playback)
        if target.playbacks[0] is playback:  # playbacks on one target play one after another
            self._later(0.001, lambda: self._start_playback(playback))
        self._touch()
        return playback

    @staticmethod
    def _target_apps(target: Channel | Bridge) -> set[str]:
        """The applications that hear about media on a channel or bridge."""
        return set(target.subscribers) if isinstance(target, Bridge) else target.apps

    def _start_playback(self, playback: Playback) -> None:
        if playback.state != "queued":
            return
        scheme = playback.media_uri.partition(":")[0]
        if scheme not in MEDIA_SCHEMES:
            self._finish_playback(playback, "failed")
            return
        playback.state = "playing"
        self._emit(self._target_apps(playback.target), "PlaybackStarted", playback=playback.json())
        self._play_media(playback)

    def _play_media(self, playback: Playback) -> None:
        url = remote_url(playback.media_uri)
        if url is not None:  # Asterisk downloads it first (remote_media.py)
            self.remote_media.play(self, playback, url)
            return
        playback.sounding_since = time.monotonic()
        playback.timer = self._later(
            self._media_duration(playback.media_uri), lambda: self._next_media(playback)
        )

    def _next_media(self, playback: Playback) -> None:
        if playback.state not in ("playing", "continuing"):
            return
        if playback.index + 1 < len(playback.media):
            self._heard(playback, "continuing")
            playback.index += 1
            playback.state = "continuing"
            self._emit(
                self._target_apps(playback.target), "PlaybackContinuing", playback=playback.json()
            )
            playback.state = "playing"
            self._play_media(playback)
            return
        self._finish_playback(playback, "done")

    def _finish_playback(self, playback: Playback, state: str) -> None:
        if playback.state in ("done", "failed"):
            return
        if playback.timer is not None:
            playback.timer.cancel()
        self._heard(playback, state)
        playback.state = state
        queue = playback.target.playbacks
        was_first = bool(queue) and queue[0] is playback
        if playback in queue:
            queue.remove(playback)
        if was_first and queue and not getattr(playback.target, "gone", False):
            following = queue[0]
            self._later(0.001, lambda: self._start_playback(following))
        self.playbacks.pop(playback.id, None)
        self._emit(self._target_apps(playback.target), "PlaybackFinished", playback=playback.json())
        if isinstance(playback.target, Bridge):
            self._record_heard(playback.target)
        self._touch()

    def _heard(self, playback: Playback, state: str) -> None:
        """The phones that heard the current media of ``playback`` note it, and for how long."""
        since, playback.sounding_since = playback.sounding_since, None
        if since is None:
            return
        target = playback.target
        listeners = target.channels if isinstance(target, Bridge) else [target]
        heard = HeardMedia(playback.media_uri, time.monotonic() - since, state)
        for channel in listeners:
            if channel.phone is not None and "out" not in channel.muted:
                channel.phone.heard_media.append(heard)

    def stop_playback(self, playback_id: str) -> None:
        playback = self.playbacks.get(playback_id)
        if playback is None:
            raise SimError(404, "The playback cannot be found")
        self._finish_playback(playback, "done")

    def record(
        self,
        target: Channel | Bridge,
        name: str,
        fmt: str,
        max_duration: int | None,
        if_exists: str | None,
    ) -> LiveRecording:
        if fmt not in RECORDING_FORMATS:
            raise SimError(422, "The format specified is unknown on this system")
        if not name or ".." in name.split("/") or name.startswith("/"):
            raise SimError(400, "Invalid parameters")
        policy = if_exists or "fail"
        if policy not in ("fail", "overwrite", "append"):
            raise SimError(400, "Invalid parameters")
        if name in self.live_recordings:
            raise SimError(409, "A recording with the same name already exists on the system")
        if name in self.stored_recordings and policy == "fail":
            raise SimError(409, "A recording with the same name already exists on the system")
        recording = LiveRecording(name=name, format=fmt, target=target)
        self.live_recordings[name] = recording
        if isinstance(target, Bridge):
            target.recordings.append(recording)
        self._later(0.001, lambda: self._start_recording(recording, max_duration))
        self._touch()
        return recording

    def _start_recording(self, recording: LiveRecording, max_duration: int | None) -> None:
        if recording.state != "queued":
            return
        recording.state = "recording"
        recording.started = time.time()
        self._record_heard_one(recording)
        self._emit(
            self._target_apps(recording.target), "RecordingStarted", recording=recording.json()
        )
        if max_duration:
            recording.timer = self._later(
                max_duration, lambda: self._finish_recording(recording, "done")
            )

    def _record_heard(self, bridge: Bridge) -> None:
        for recording in bridge.recordings:
            self._record_heard_one(recording)
        for member in bridge.channels:  # snoops on a member hear the bridge through it
            for snoop in member.snoops:
                for recording in list(self.live_recordings.values()):
                    if recording.target is snoop:
                        self._record_heard_one(recording)

    def _record_heard_one(self, recording: LiveRecording) -> None:
        if recording.state != "recording" or recording.muted:
            return
        target = recording.target
        if isinstance(target, Bridge):
            members = target.channels
        elif target.spied is not None:
            members = self._spied_voices(target)
        else:
            members = [target]
        for channel in members:
            if "in" not in channel.muted and not channel.bridge_mute:
                recording.heard.add(self.party_name(channel))

    @staticmethod
    def _spied_voices(snoop: Channel) -> list[Channel]:
        """Whose voices a snoop channel carries: with ``in`` what the spied channel says, with
        ``out`` what it hears (the other members of its bridge, or its dialplan peer)."""
        spied = snoop.spied
        if spied is None or spied.gone:
            return []
        voices = [spied] if snoop.spy in ("in", "both") else []
        if snoop.spy in ("out", "both") and "out" not in spied.muted:
            if spied.bridge is not None:
                voices += [c for c in spied.bridge.channels if c is not spied]
            elif spied.far is not None and spied.far.state == "Up":
                voices.append(spied.far)
        return voices

    def _finish_recording(self, recording: LiveRecording, state: str) -> None:
        if recording.state in ("done", "failed", "canceled"):
            return
        if recording.timer is not None:
            recording.timer.cancel()
        was_recording = recording.state == "recording"
        if recording.muted_since is not None:
            recording.muted_seconds += time.time() - recording.muted_since
            recording.muted_since = None
        recording.state = state
        recording.ended = time.time()
        self.live_recordings.pop(recording.name, None)
        if isinstance(recording.target, Bridge) and recording in recording.target.recordings:
            recording.target.recordings.remove(recording)
        if state == "done" and was_recording:
            self.stored_recordings[recording.name] = StoredRecording(
                name=recording.name,
                format=recording.format,
                duration=recording.ended - recording.started,
                muted_seconds=recording.muted_seconds,
                heard=frozenset(recording.heard),
            )
        self._emit(
            self._target_apps(recording.target), "RecordingFinished", recording=recording.json()
        )
        self._touch()

    def require_live(self, name: str) -> LiveRecording:
        recording = self.live_recordings.get(name)
        if recording is None:
            raise SimError(404, "Recording not found")
        return recording

    def stop_recording(self, name: str, cancel: bool = False) -> None:
        recording = self.require_live(name)
        self._finish_recording(recording, "canceled" if cancel else "done")

    def mute_recording(self, name: str, on: bool) -> None:
        recording = self.require_live(name)
        if recording.state != "recording":
            raise SimError(409, "Recording not in session")
        if on and not recording.muted:
            recording.muted = True
            recording.muted_since = time.time()
        elif not on and recording.muted:
            recording.muted = False
            if recording.muted_since is not None:
                recording.muted_seconds += time.time() - recording.muted_since
            recording.muted_since = None
            self._record_heard_one(recording)
        self._touch()

    def recording_audio(self, name: str) -> tuple[bytes, str]:
        stored = self.stored_recordings.get(name)
        if stored is None:
            raise SimError(404, "Recording not found")
        return wav_of_silence(stored.duration), "audio/wav" if stored.format.startswith(
            "wav"
        ) else "application/octet-stream"


def wav_of_silence(seconds: float, rate: int = 8000) -> bytes:
    """A valid 16-bit mono WAV file of ``seconds`` of silence."""
    samples = max(int(seconds * rate), 1)
    data_size = samples * 2
    header = b"RIFF" + (36 + data_size).to_bytes(4, "little") + b"WAVEfmt "
    header += (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
    header += rate.to_bytes(4, "little") + (rate * 2).to_bytes(4, "little")
    header += (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    header += b"data" + data_size.to_bytes(4, "little")
    return header + bytes(data_size)
