"""Sample-rate conversion of 16-bit mono PCM, in plain Python (``audioop`` left in 3.13).

A polyphase windowed-sinc low-pass: the rate ratio is reduced to ``up/down``, each output sample
sits at a fractional input position whose fraction repeats every ``up`` samples, so one short
filter per phase is computed once and applied with C-level ``sum(map(mul, …))``. Cut-off at
90 % of the lower Nyquist frequency keeps the speech band and removes aliasing. It runs in the
synthesis subprocess, never on the event loop.
"""

from __future__ import annotations

import math
import operator
from array import array
from fractions import Fraction

HALF_TAPS = 12  # taps each side of the output position (24 in all)


def _kernel(position: float, cutoff: float) -> float:
    """Windowed sinc at ``position`` input samples; ``cutoff`` in cycles per input sample."""
    if abs(position) >= HALF_TAPS:
        return 0.0
    x = 2.0 * cutoff * position
    sinc = 1.0 if x == 0 else math.sin(math.pi * x) / (math.pi * x)
    window = 0.5 + 0.5 * math.cos(math.pi * position / HALF_TAPS)  # Hann
    return 2.0 * cutoff * sinc * window


def resample(samples: array[int], source_rate: int, target_rate: int) -> array[int]:
    """Return ``samples`` (``array('h')``) converted from ``source_rate`` to ``target_rate``."""
    if source_rate <= 0 or target_rate <= 0:
        raise ValueError("sample rates must be positive")
    if source_rate == target_rate or not samples:
        return array("h", samples)
    ratio = Fraction(source_rate, target_rate)  # input samples per output sample
    up, down = ratio.denominator, ratio.numerator
    cutoff = 0.45 * min(1.0, target_rate / source_rate)
    phases: list[list[float]] = []
    for phase in range(up):
        fraction = phase / up
        taps = [_kernel(fraction - k, cutoff) for k in range(-HALF_TAPS + 1, HALF_TAPS + 1)]
        gain = sum(taps) or 1.0
        phases.append([tap / gain for tap in taps])
    # Pad so every window is whole; the edges see silence.
    padded = [0] * HALF_TAPS + list(samples) + [0] * (HALF_TAPS + 1)
    count = len(samples) * up // down
    out = array("h", bytes(2 * count))
    mul = operator.mul
    for n in range(count):
        base, rest = divmod(n * down, up)
        # Window covers input samples base-HALF_TAPS+1 … base+HALF_TAPS (offset by the padding).
        window = padded[base + 1 : base + 1 + 2 * HALF_TAPS]
        value = round(sum(map(mul, phases[rest], window)))
        out[n] = 32767 if value > 32767 else -32768 if value < -32768 else value
    return out
