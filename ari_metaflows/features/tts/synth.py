"""The speech synthesizer, run as ``python -m ari_metaflows.features.tts.synth``.

Always a child process of the service (``SpeechCache``): libespeak-ng is a C library holding
global state and taking as long as the text needs, so it never runs on the event loop or in a
thread. One JSON request on stdin::

    {"text": "...", "language": "en-us", "variant": "f2", "out": "/path/file.tmp",
     "library": null, "data": null, "rate": 8000}

writes an 8 kHz (``rate``) 16-bit mono WAV to ``out`` and prints one JSON line on stdout:
``{"ok": true, "seconds": 1.23}`` or ``{"ok": false, "error": "engine" | "voice" | "synthesis",
"message": "..."}`` (exit status 0, 3, 4, 5 respectively). ``library``/``data`` override the
libespeak-ng and espeak-ng-data bundled by the ``espeakng-loader`` package.
``{"check": true}`` only loads the engine and answers ``{"ok": true, "version": "..."}``.
"""

from __future__ import annotations

import ctypes
import json
import sys
import wave
from array import array
from typing import Any

from .resample import resample

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
CHARS_UTF8 = 1
EXIT_STATUS = {"engine": 3, "voice": 4, "synthesis": 5}


class SynthFailure(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class _Voice(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    )


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def _paths(library: str | None, data: str | None) -> tuple[str, str]:
    if library is not None and data is not None:
        return library, data
    try:
        import espeakng_loader
    except ImportError as exc:
        message = f"the espeakng-loader package is not installed: {exc}"
        raise SynthFailure("engine", message) from None
    try:
        return (
            library or espeakng_loader.get_library_path(),
            data or espeakng_loader.get_data_path(),
        )
    except RuntimeError as exc:
        raise SynthFailure("engine", f"eSpeak NG data is missing: {exc}") from None


def load_engine(library: str | None, data: str | None) -> tuple[ctypes.CDLL, int, str]:
    """Load libespeak-ng in synchronous mode; return it, its sample rate and its version."""
    library_path, data_path = _paths(library, data)
    try:
        lib = ctypes.CDLL(library_path)
    except OSError as exc:
        raise SynthFailure("engine", f"cannot load libespeak-ng ({library_path}): {exc}") from None
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_GetCurrentVoice.restype = ctypes.POINTER(_Voice)
    lib.espeak_SetSynthCallback.argtypes = [_Callback]
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
    if rate <= 0:
        raise SynthFailure("engine", f"eSpeak NG failed to initialize with data {data_path}")
    version = (lib.espeak_Info(None) or b"?").decode(errors="replace")
    return lib, rate, version


def select_voice(lib: ctypes.CDLL, language: str, variant: str | None) -> str:
    """Let eSpeak NG pick its best voice for ``language``, then apply the variant."""
    wanted = _Voice(languages=language.encode())
    if lib.espeak_SetVoiceByProperties(ctypes.byref(wanted)) != 0:
        raise SynthFailure("voice", f"eSpeak NG has no voice for language {language!r}")
    identifier = (lib.espeak_GetCurrentVoice().contents.identifier or b"").decode()
    base = identifier.partition("+")[0]
    name = f"{base}+{variant}" if variant else base
    if not base or lib.espeak_SetVoiceByName(name.encode()) != 0:
        raise SynthFailure("voice", f"eSpeak NG cannot use voice {name!r}")
    return name


def synthesize(lib: ctypes.CDLL, text: str) -> array[int]:
    chunks: list[bytes] = []

    def collect(wav: Any, count: int, _events: Any) -> int:
        if count > 0 and wav:
            chunks.append(ctypes.string_at(wav, count * 2))
        return 0

    callback = _Callback(collect)
    lib.espeak_SetSynthCallback(callback)
    encoded = text.encode()
    status = lib.espeak_Synth(
        encoded, len(encoded) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None
    )
    if status != 0:
        raise SynthFailure("synthesis", f"eSpeak NG synthesis failed (status {status})")
    lib.espeak_Synchronize()
    samples = array("h")
    samples.frombytes(b"".join(chunks))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def write_wav(path: str, samples: array[int], rate: int) -> None:
    if sys.byteorder == "big":
        samples = array("h", samples)
        samples.byteswap()
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


def run(request: dict[str, Any]) -> dict[str, Any]:
    lib, engine_rate, version = load_engine(request.get("library"), request.get("data"))
    if request.get("check"):
        return {"ok": True, "version": version}
    text = request["text"]
    if not isinstance(text, str) or not text.strip():
        raise SynthFailure("synthesis", "there is no text to say")
    select_voice(lib, request.get("language") or "en-us", request.get("variant"))
    rate = int(request.get("rate", 8000))
    samples = resample(synthesize(lib, text), engine_rate, rate)
    if not samples:
        raise SynthFailure("synthesis", "eSpeak NG produced no audio")
    write_wav(request["out"], samples, rate)
    return {"ok": True, "seconds": len(samples) / rate}


def main() -> int:
    try:
        request = json.loads(sys.stdin.read())
        if not isinstance(request, dict):
            raise SynthFailure("synthesis", "the request must be a JSON object")
        answer = run(request)
        status = 0
    except SynthFailure as failure:
        answer = {"ok": False, "error": failure.kind, "message": failure.message}
        status = EXIT_STATUS[failure.kind]
    except (ValueError, KeyError, OSError) as exc:
        answer = {"ok": False, "error": "synthesis", "message": f"{type(exc).__name__}: {exc}"}
        status = EXIT_STATUS["synthesis"]
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
