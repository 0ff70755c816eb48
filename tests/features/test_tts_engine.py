"""Speech synthesis for tts: a real eSpeak NG in a real child process, cached once per request."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import wave
from array import array
from pathlib import Path

import pytest

from ari_metaflows.features.tts.engine import SpeechCache, speech_key, wav_seconds
from ari_metaflows.features.tts.errors import (
    EngineUnavailable,
    SynthesisFailed,
    SynthesisTimeout,
    TextRejected,
    VoiceUnavailable,
)
from ari_metaflows.features.tts.resample import resample
from ari_metaflows.features.tts.voices import espeak_voice

SHORT = "Goodbye."
LONG = (
    "Your call is being transferred to the accounting department. Please stay on the line, "
    "somebody will be with you shortly."
)


def read_samples(path: Path) -> tuple[wave._wave_params, array[int]]:
    with wave.open(str(path), "rb") as wav:
        params = wav.getparams()
        samples = array("h")
        samples.frombytes(wav.readframes(params.nframes))
    return params, samples


def rms(samples: array[int]) -> float:
    return math.sqrt(sum(v * v for v in samples) / max(len(samples), 1))


async def test_synthesis_is_8khz_mono_speech_whose_length_follows_the_text(
    tmp_path: Path,
) -> None:
    cache = SpeechCache(tmp_path)
    short = await cache.wav_for(SHORT, "female", "en-US")
    long = await cache.wav_for(LONG, "female", "en-US")

    for path in (short, long):
        params, samples = read_samples(path)
        assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 8000)
        assert path.parent == tmp_path / "tts"
        # Speech: loud enough, with quieter gaps between words (not a tone, not silence).
        windows = [rms(samples[i : i + 400]) for i in range(0, len(samples) - 400, 400)]
        assert max(abs(v) for v in samples) > 2000
        assert max(windows) > 10 * (min(windows) + 1)
    assert 0.3 < wav_seconds(short) < 3
    assert wav_seconds(long) > 4 * wav_seconds(short)
    assert cache.syntheses == 2


async def test_a_cached_text_is_not_synthesized_again_even_after_a_restart(
    tmp_path: Path,
) -> None:
    cache = SpeechCache(tmp_path)
    first = await cache.wav_for(SHORT, "female", "en-US")
    modified = first.stat().st_mtime_ns
    again = await cache.wav_for(SHORT, "FEMALE", "en-us")  # same voice and language, normalised
    assert again == first
    assert cache.syntheses == 1

    restarted = SpeechCache(tmp_path)
    assert await restarted.wav_for(SHORT, "female", "en-US") == first
    assert restarted.syntheses == 0
    assert first.stat().st_mtime_ns == modified
    assert first.stem == speech_key(SHORT, "female", "en-us")


async def test_concurrent_requests_share_one_synthesis(tmp_path: Path) -> None:
    cache = SpeechCache(tmp_path)
    paths = await asyncio.gather(*(cache.wav_for(LONG, "male", "en-GB") for _ in range(6)))
    assert len(set(paths)) == 1
    assert cache.syntheses == 1
    assert sorted(p.name for p in (tmp_path / "tts").iterdir()) == [paths[0].name]


async def test_voice_and_language_make_different_files(tmp_path: Path) -> None:
    cache = SpeechCache(tmp_path)
    female = await cache.wav_for(SHORT, "female", "en-US")
    male = await cache.wav_for(SHORT, "male", "en-US")
    french = await cache.wav_for("Au revoir.", "female", "fr-FR")
    assert len({female, male, french}) == 3
    assert female.read_bytes() != male.read_bytes()


async def test_a_waiter_cancelled_leaves_the_synthesis_to_the_others(tmp_path: Path) -> None:
    cache = SpeechCache(tmp_path)
    impatient = asyncio.create_task(cache.wav_for(LONG, "female", "en-US"))
    patient = asyncio.create_task(cache.wav_for(LONG, "female", "en-US"))
    await asyncio.sleep(0.05)
    impatient.cancel()
    path = await patient
    assert impatient.cancelled()
    assert path.is_file()
    assert cache.syntheses == 1


async def test_bad_requests_are_refused_before_any_synthesis(tmp_path: Path) -> None:
    cache = SpeechCache(tmp_path, max_chars=50)
    with pytest.raises(TextRejected, match="no text"):
        await cache.wav_for("   ", "female", "en-US")
    with pytest.raises(TextRejected, match="at most 50"):
        await cache.wav_for("x" * 51, "female", "en-US")
    with pytest.raises(VoiceUnavailable, match="female or male"):
        await cache.wav_for(SHORT, "robot", "en-US")
    with pytest.raises(VoiceUnavailable, match="language tag"):
        await cache.wav_for(SHORT, "female", "../../etc")
    assert cache.syntheses == 0


async def test_a_language_espeak_does_not_know_fails_clearly(tmp_path: Path) -> None:
    cache = SpeechCache(tmp_path)
    with pytest.raises(VoiceUnavailable, match="no voice for language 'qq-zz'"):
        await cache.wav_for(SHORT, "female", "qq-ZZ")
    assert not list((tmp_path / "tts").iterdir())  # no partial file left behind


async def test_no_engine_is_a_clear_error_not_a_crash(tmp_path: Path) -> None:
    cache = SpeechCache(tmp_path, library=str(tmp_path / "missing" / "libespeak-ng.so"))
    with pytest.raises(EngineUnavailable, match="cannot load libespeak-ng"):
        await cache.check()
    with pytest.raises(EngineUnavailable, match="cannot load libespeak-ng"):
        await cache.wav_for(SHORT, "female", "en-US")
    # The same cache keeps answering (no stuck single-flight entry).
    with pytest.raises(EngineUnavailable):
        await cache.wav_for(SHORT, "female", "en-US")
    assert cache.syntheses == 3

    no_python = SpeechCache(tmp_path, python=str(tmp_path / "no-such-python"))
    with pytest.raises(EngineUnavailable, match="cannot start the synthesizer"):
        await no_python.wav_for(SHORT, "female", "en-US")


async def test_the_engine_check_names_the_version(tmp_path: Path) -> None:
    info = await SpeechCache(tmp_path).check()
    assert info.name == "espeak-ng"
    assert info.version[:1].isdigit()


async def test_a_killed_synthesizer_is_a_failure_and_the_next_request_works(
    tmp_path: Path,
) -> None:
    cache = SpeechCache(tmp_path, on_spawn=lambda pid: os.kill(pid, signal.SIGKILL))
    with pytest.raises(SynthesisFailed, match="killed by signal 9"):
        await cache.wav_for(SHORT, "female", "en-US")
    assert not list((tmp_path / "tts").iterdir())
    healthy = SpeechCache(tmp_path)
    assert (await healthy.wav_for(SHORT, "female", "en-US")).is_file()


async def test_a_slow_synthesis_is_killed_at_the_timeout(tmp_path: Path) -> None:
    pids: list[int] = []
    cache = SpeechCache(tmp_path, timeout=0.01, on_spawn=pids.append)
    with pytest.raises(SynthesisTimeout, match=r"longer than 0\.01 s"):
        await cache.wav_for(LONG, "female", "en-US")
    assert len(pids) == 1
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left running
        os.kill(pids[0], 0)


async def test_close_kills_a_running_synthesis(tmp_path: Path) -> None:
    pids: list[int] = []
    spawned = asyncio.Event()

    def seen(pid: int) -> None:
        pids.append(pid)
        spawned.set()

    cache = SpeechCache(tmp_path, on_spawn=seen)
    waiter = asyncio.create_task(cache.wav_for(LONG * 5, "female", "en-US"))
    await asyncio.wait_for(spawned.wait(), 5)
    await cache.close()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


async def test_the_event_loop_keeps_running_during_synthesis(tmp_path: Path) -> None:
    cache = SpeechCache(tmp_path)
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    beating = asyncio.create_task(heartbeat())
    try:
        await cache.wav_for(LONG * 4, "female", "en-US")
    finally:
        beating.cancel()
    # The synthesis (process start, speech, resampling) takes far longer than 5 ms; the loop
    # served the heartbeat all along.
    assert ticks >= 10


def test_voice_mapping_is_documented_and_total() -> None:
    assert espeak_voice(None, None).language == "en-us"
    assert espeak_voice(None, None).variant == "f2"
    assert espeak_voice("male", "pt_BR").language == "pt-br"
    assert espeak_voice("female/en-US", "de-DE").variant == "f2"
    with pytest.raises(VoiceUnavailable):
        espeak_voice("child", "en")


def test_resampling_keeps_speech_band_and_drops_what_8khz_cannot_carry() -> None:
    rate = 22050

    def tone(frequency: float) -> array[int]:
        return array(
            "h", (int(8000 * math.sin(2 * math.pi * frequency * i / rate)) for i in range(rate))
        )

    kept = resample(tone(1000), rate, 8000)
    dropped = resample(tone(6000), rate, 8000)  # would alias to 2 kHz if not filtered
    assert len(kept) == 8000
    assert rms(kept[100:-100]) > 0.9 * 8000 / math.sqrt(2)
    assert rms(dropped[100:-100]) < 100
