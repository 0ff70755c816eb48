"""tts: speech from eSpeak NG, cached as 8 kHz WAV files that Asterisk fetches over HTTP."""
