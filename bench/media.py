"""Audio for the real-Asterisk benchmark: RTP in pcap files for sipp's ``play_pcap_audio``, and
the check that a recorded WAV holds both parties.

Each side plays its own tone (caller 440 Hz, callee 1,000 Hz, PCMU), so a recording's content
says whose voice it has: ``tone_levels`` measures each frequency's energy (Goertzel). The
caller's file can carry RFC 4733 events (``*9``) in the same RTP stream, as a phone sends them.
"""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

RATE = 8000
PTIME = 0.02
SAMPLES = int(RATE * PTIME)
PCMU, EVENT = 0, 101
CALLER_HZ, CALLEE_HZ = 440.0, 1000.0
DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
SSRC = 0x4D46_0001


def _ulaw(sample: int) -> int:
    """G.711 µ-law of one 16-bit sample."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _udp_frame(payload: bytes, src_port: int = 40000, dst_port: int = 40002) -> bytes:
    """Ethernet + IPv4 + UDP around ``payload`` (sipp rewrites addresses and ports)."""
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes(4), bytes(4)
    )
    checksum = sum(struct.unpack("!10H", header))
    checksum = (checksum & 0xFFFF) + (checksum >> 16)
    header = header[:10] + struct.pack("!H", ~checksum & 0xFFFF) + header[12:]
    return bytes(12) + b"\x08\x00" + header + udp


def write_pcap(path: Path, hz: float, seconds: float, dtmf: str = "", dtmf_at: float = 1.5) -> None:
    """``seconds`` of a ``hz`` tone as 20 ms PCMU packets; ``dtmf`` as RFC 4733 events from
    ``dtmf_at`` s (100 ms per digit, 100 ms apart; the tone pauses meanwhile)."""
    packets = int(seconds / PTIME)
    table = bytes(_ulaw(int(8000 * math.sin(2 * math.pi * hz * n / RATE))) for n in range(RATE))
    events: dict[int, tuple[int, int, int, bool]] = {}  # packet → (event, start ts, dur, end)
    first = int(dtmf_at / PTIME)
    for index, digit in enumerate(dtmf):
        start = first + index * 10
        for step in range(5):  # 100 ms of the digit, then its end packet three times
            end = step == 4
            duration = SAMPLES * min(step + 1, 5)
            events[start + step] = (DTMF_EVENTS[digit], start * SAMPLES, duration, end)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for n in range(packets):
        seconds_at = n * PTIME
        if n in events:
            event, timestamp, duration, end = events[n]
            marker = 0x80 if duration == SAMPLES else 0
            payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
            rtp = struct.pack("!BBHII", 0x80, marker | EVENT, n & 0xFFFF, timestamp, SSRC)
            copies = 3 if end else 1
        else:
            offset = (n * SAMPLES) % RATE
            chunk = (table + table)[offset : offset + SAMPLES]
            rtp = struct.pack("!BBHII", 0x80, PCMU, n & 0xFFFF, n * SAMPLES, SSRC)
            payload, copies = chunk, 1
        for _ in range(copies):
            frame = _udp_frame(rtp + payload)
            sec, usec = int(seconds_at), int((seconds_at % 1) * 1_000_000)
            out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


def _goertzel(samples: list[int], hz: float, rate: int) -> float:
    coefficient = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for sample in samples:
        s1, s2 = sample + coefficient * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coefficient * s1 * s2) / max(len(samples), 1) ** 2


def tone_levels(wav: bytes, tmp: Path) -> dict[str, float]:
    """Relative energy of the caller's and the callee's tone in a 16-bit WAV recording."""
    tmp.write_bytes(wav)
    with wave.open(str(tmp), "rb") as reader:
        rate = reader.getframerate()
        frames = reader.readframes(reader.getnframes())
        width = reader.getsampwidth()
    if width != 2 or not frames:
        return {"caller": 0.0, "callee": 0.0}
    samples = list(struct.unpack(f"<{len(frames) // 2}h", frames))[: rate * 4]
    return {
        "caller": _goertzel(samples, CALLER_HZ, rate),
        "callee": _goertzel(samples, CALLEE_HZ, rate),
    }


def both_parties(levels: dict[str, float], floor: float = 1000.0) -> bool:
    """Both tones are clearly present (silence gives ~0; a tone at our level ~10⁵-10⁶)."""
    return levels["caller"] > floor and levels["callee"] > floor
