"""Speech for the tts module: synthesized once per (text, voice, language), cached as WAV files.

``SpeechCache.wav_for`` answers the path of an 8 kHz 16-bit mono WAV under
``<data dir>/tts/<key>.wav``; the key is the SHA-256 of (engine, voice, language, text), so the
same speech is synthesized once and then served from disk, across calls and restarts. Concurrent
requests for one key share a single synthesis (single flight). Synthesis runs in a child process
(``python -m ari_metaflows.features.tts.synth``), bounded by a timeout and a text length, and
at most ``max_parallel`` at a time; the event loop only waits on the pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import sys
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import (
    EngineUnavailable,
    SynthesisFailed,
    SynthesisTimeout,
    TextRejected,
    TtsError,
    VoiceUnavailable,
)
from .voices import espeak_voice

logger = logging.getLogger(__name__)

ENGINE = "espeak-ng"
SAMPLE_RATE = 8000
MAX_TEXT_CHARS = 1000
DEFAULT_TIMEOUT = 30.0
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class EngineInfo:
    name: str
    version: str


def speech_key(text: str, voice: str, language: str) -> str:
    """The cache key of a normalised (engine, voice, language, text)."""
    material = json.dumps([ENGINE, voice, language, text], ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()


def is_key(key: str) -> bool:
    return bool(_KEY_RE.match(key))


class SpeechCache:
    """Cached speech files, synthesized off the event loop."""

    def __init__(
        self,
        data_dir: Path,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_chars: int = MAX_TEXT_CHARS,
        max_parallel: int = 2,
        library: str | None = None,
        espeak_data: str | None = None,
        python: str = sys.executable,
        on_spawn: Callable[[int], None] | None = None,
    ) -> None:
        self.directory = Path(data_dir) / "tts"
        self.timeout = timeout
        self.max_chars = max_chars
        self._library = library
        self._espeak_data = espeak_data
        self._python = python
        self._on_spawn = on_spawn  # sees each synthesizer's pid (tests, metrics)
        self._slots = asyncio.Semaphore(max_parallel)
        self._in_flight: dict[str, asyncio.Task[Path]] = {}
        self.syntheses = 0  # synthesizer processes started, for metrics and tests

    def path_for_key(self, key: str) -> Path | None:
        """The cached file of ``key``, if the key is well-formed and the file exists."""
        if not is_key(key):
            return None
        path = self.directory / f"{key}.wav"
        return path if path.is_file() else None

    def key_for(self, text: str, voice: str | None, language: str | None) -> str:
        """Validate the request and answer its cache key (raises ``TtsError``)."""
        if not isinstance(text, str) or not text.strip():
            raise TextRejected("there is no text to say")
        if len(text) > self.max_chars:
            raise TextRejected(
                f"the text has {len(text)} characters; at most {self.max_chars} can be said"
            )
        chosen = espeak_voice(voice, language)
        return speech_key(text, chosen.voice, chosen.language)

    async def wav_for(self, text: str, voice: str | None, language: str | None) -> Path:
        """The WAV file saying ``text``; synthesizes it unless cached (raises ``TtsError``)."""
        key = self.key_for(text, voice, language)
        cached = self.path_for_key(key)
        if cached is not None:
            return cached
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.create_task(self._produce(key, text, voice, language))
            self._in_flight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # A waiter that is cancelled leaves the synthesis running for the others.
        return await asyncio.shield(task)

    def _forget(self, key: str, task: asyncio.Task[Path]) -> None:
        self._in_flight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here too, for when every waiter has gone

    async def check(self) -> EngineInfo:
        """Load the engine in a child process: a clear error at start, not at the first call."""
        answer = await self._run({"check": True}, timeout=self.timeout)
        return EngineInfo(ENGINE, str(answer.get("version", "?")))

    async def close(self) -> None:
        """Cancel running syntheses (their processes are killed) and wait for them."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _produce(self, key: str, text: str, voice: str | None, language: str | None) -> Path:
        chosen = espeak_voice(voice, language)
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"{key}.wav"
        partial = self.directory / f".{key}.{secrets.token_hex(4)}.tmp"
        request = {
            "text": text,
            "language": chosen.language,
            "variant": chosen.variant,
            "out": str(partial),
            "rate": SAMPLE_RATE,
        }
        try:
            async with self._slots:
                await self._run(request, timeout=self.timeout)
            _check_wav(partial)
            os.replace(partial, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        logger.info("tts: synthesized %s (%d characters, %s)", key[:12], len(text), chosen)
        return final

    async def _run(self, request: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        request = {**request, "library": self._library, "data": self._espeak_data}
        try:
            process = await asyncio.create_subprocess_exec(
                self._python,
                "-m",
                "ari_metaflows.features.tts.synth",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise EngineUnavailable(f"cannot start the synthesizer: {exc}") from None
        self.syntheses += 1
        if self._on_spawn is not None:
            self._on_spawn(process.pid)
        try:
            async with asyncio.timeout(timeout):
                stdout, stderr = await process.communicate(json.dumps(request).encode())
        except TimeoutError:
            raise SynthesisTimeout(f"speech synthesis took longer than {timeout:g} s") from None
        finally:
            if process.returncode is None:  # timed out or cancelled: never leave it behind
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        return _answer(process.returncode, stdout, stderr)


def _answer(returncode: int | None, stdout: bytes, stderr: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(stdout[:_MAX_ANSWER_BYTES].decode().strip().splitlines()[-1])
    except (ValueError, IndexError, UnicodeDecodeError):
        answer = None
    if isinstance(answer, dict) and answer.get("ok") is True and returncode == 0:
        return answer
    if isinstance(answer, dict) and answer.get("ok") is False:
        message = str(answer.get("message", "unknown error"))
        kind = answer.get("error")
        error: type[TtsError] = (
            EngineUnavailable
            if kind == "engine"
            else VoiceUnavailable
            if kind == "voice"
            else SynthesisFailed
        )
        raise error(message)
    if returncode is not None and returncode < 0:
        raise SynthesisFailed(f"the synthesizer was killed by signal {-returncode}")
    detail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    raise SynthesisFailed(f"the synthesizer failed (exit status {returncode}): {detail[0][:200]}")


def _check_wav(path: Path) -> None:
    """The synthesizer's file must be the 8 kHz 16-bit mono WAV Asterisk's format_wav reads."""
    try:
        with wave.open(str(path), "rb") as wav:
            shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
            frames = wav.getnframes()
    except (OSError, EOFError, wave.Error) as exc:
        raise SynthesisFailed(f"the synthesizer wrote no usable WAV: {exc}") from None
    if shape != (1, 2, SAMPLE_RATE) or frames == 0:
        raise SynthesisFailed(f"the synthesizer wrote an unexpected WAV {shape}, {frames} frames")


def wav_seconds(path: Path) -> float:
    """Length of a WAV file in seconds (reads only its header)."""
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()
