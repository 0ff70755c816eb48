"""Why speech could not be had: ``ModuleFailed`` subclasses (the one error tree,
``ari_metaflows/errors.py``), so a tts flow ends ``failed`` with ``str(error)`` as the reason
in the log; none of them ever ends the call or the service.

    ModuleFailed
    └── TtsError
        ├── TextRejected        empty text, or longer than the cap
        ├── VoiceUnavailable    no eSpeak NG voice for the language, or an unknown Kazoo voice
        ├── EngineUnavailable   eSpeak NG cannot be loaded (package, library or data missing)
        └── SynthesisFailed     the synthesizer crashed, was killed or wrote no usable WAV
            └── SynthesisTimeout    it took longer than the limit and was killed
"""

from __future__ import annotations

from ...errors import ModuleFailed


class TtsError(ModuleFailed):
    """Speech could not be produced; ``str()`` is the reason for the audit trail."""


class TextRejected(TtsError):
    pass


class VoiceUnavailable(TtsError):
    pass


class EngineUnavailable(TtsError):
    pass


class SynthesisFailed(TtsError):
    pass


class SynthesisTimeout(SynthesisFailed):
    pass
