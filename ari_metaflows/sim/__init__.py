"""A simulated Asterisk (ARI) for tests, benchmarks and demos, with phones to drive it."""

from .core import Application, DialPhone, Hangup, SimError, SimulatedAsterisk, StasisApp, Timing
from .phones import Hearing, KeyTiming, SimPhone, SimulatedAsteriskServer

__all__ = [
    "Application",
    "DialPhone",
    "Hangup",
    "Hearing",
    "KeyTiming",
    "SimError",
    "SimPhone",
    "SimulatedAsterisk",
    "SimulatedAsteriskServer",
    "StasisApp",
    "Timing",
]
