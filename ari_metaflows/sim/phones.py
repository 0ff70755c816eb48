"""The test's side of the simulated Asterisk: phones people use, and what they hear.

A ``SimPhone`` places calls, answers or rejects them, presses keys with realistic timing and
hangs up; ``hears()`` says what the person holding it hears right now (the other party, music
on hold, ringing, a playback, silence).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import NamedTuple

from .core import SimError, SimulatedAsterisk
from .model import Channel, HeardMedia, Phone
from .server import AriServer


class Hearing(NamedTuple):
    kind: str  # "party", "moh", "ringing", "playback", "silence", "application", "idle", "hungup"
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.detail}" if self.detail else self.kind


@dataclass(frozen=True)
class KeyTiming:
    """How a person presses keys: each digit lasts ``duration_ms``, ``gap_ms`` between."""

    duration_ms: int = 100
    gap_ms: int = 80


class SimPhone:
    def __init__(self, sim: SimulatedAsterisk, phone: Phone) -> None:
        self._sim = sim
        self.phone = phone

    @property
    def name(self) -> str:
        return self.phone.name

    @property
    def channel(self) -> Channel | None:
        """The phone's current call leg (the newest that is still up)."""
        return self.phone.active_channel

    @property
    def heard_dtmf(self) -> str:
        return "".join(self.phone.heard_dtmf)

    @property
    def heard_media(self) -> list[HeardMedia]:
        """Each playback this phone heard (media, seconds, final state), oldest first."""
        return list(self.phone.heard_media)

    def call(self, exten: str, context: str = "default") -> Channel:
        return self._sim.place_call(self.phone, exten, context)

    async def wait_ringing(self, timeout: float = 5.0) -> Channel:
        await self._sim.wait_for(lambda: bool(self.phone.ringing_channels), timeout)
        return self.phone.ringing_channels[0]

    async def answer(self, timeout: float = 5.0) -> Channel:
        channel = await self.wait_ringing(timeout)
        return self._sim.phone_answers(self.phone, channel)

    async def reject(self, timeout: float = 5.0) -> None:
        await self.wait_ringing(timeout)
        self._sim.phone_rejects(self.phone)

    async def press(self, digits: str, timing: KeyTiming | None = None) -> None:
        """Press keys one by one; each digit reaches Asterisk when it ends."""
        timing = timing or KeyTiming()
        for index, digit in enumerate(digits):
            if index:
                await asyncio.sleep(timing.gap_ms / 1000)
            await asyncio.sleep(timing.duration_ms / 1000)
            channel = self.channel
            if channel is None:
                raise SimError(409, f"{self.name} has no call to press keys on")
            self._sim.phone_presses(channel, digit, timing.duration_ms)

    async def hangup(self) -> None:
        self._sim.phone_hangs_up(self.phone)

    def hears(self) -> Hearing:
        return Hearing(*self._sim.phone_hears(self.phone))

    async def wait_hears(self, kind: str, detail: str | None = None, timeout: float = 5.0) -> None:
        def matches() -> bool:
            heard = self.hears()
            return heard.kind == kind and (detail is None or heard.detail == detail)

        try:
            await self._sim.wait_for(matches, timeout)
        except TimeoutError:
            raise AssertionError(
                f"{self.name} hears {self.hears()}, expected {kind}:{detail or '*'}"
            ) from None


class SimulatedAsteriskServer:
    """A simulated Asterisk with its ARI server on loopback: ``async with`` it."""

    def __init__(
        self, *, username: str = "asterisk", password: str = "secret", **core_options: object
    ) -> None:
        self.core = SimulatedAsterisk(**core_options)  # type: ignore[arg-type]
        self.server = AriServer(self.core, username=username, password=password)
        self.username = username
        self.password = password
        self.url = ""

    async def __aenter__(self) -> SimulatedAsteriskServer:
        self.url = await self.server.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.server.stop()

    def add_phone(self, name: str, **options: object) -> SimPhone:
        return SimPhone(self.core, self.core.add_phone(name, **options))  # type: ignore[arg-type]

    async def drop_websockets(self) -> None:
        await self.server.drop_websockets()

    async def restart(self) -> None:
        """Asterisk restarts: websockets drop, every call and bridge is gone."""
        await self.server.drop_websockets()
        self.core.restart()
