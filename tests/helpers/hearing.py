"""What a leg heard, and for how long, on the simulator or a real Asterisk.

The simulator's phones note each medium they heard (``HeardMedia``). A real Asterisk tells
through its events: the driver's own application (subscribed to everything) times each
playback from ``PlaybackStarted`` to ``PlaybackFinished`` (``AsteriskDriver.playback_log``);
a leg heard those on its channel and on the call's bridge while it was in it (ringback tones
left out, as the simulator's phones leave them out).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ari_metaflows.features.tts.engine import wav_seconds
from ari_metaflows.testing.eventually import eventually
from ari_metaflows.testing.scenario import AsteriskDriver, SimDriver, SimTestPhone

from .engine_service import Service


@dataclass(frozen=True)
class Heard:
    media: str
    seconds: float
    state: str  # "done", "failed", … as the playback ended


def heard_on(service: Service, phone: Any, channel_id: str, bridge_id: str | None) -> list[Heard]:
    """Media ``phone`` heard to the end (of playing or of being stopped), in order; on a real
    Asterisk, those played to its leg's ``channel_id`` or to ``bridge_id``."""
    driver = service.driver
    if isinstance(driver, SimDriver):
        assert isinstance(phone, SimTestPhone)
        return [Heard(m.media, m.seconds, m.state) for m in phone.phone.heard_media]
    assert isinstance(driver, AsteriskDriver)
    targets = {f"channel:{channel_id}"} | ({f"bridge:{bridge_id}"} if bridge_id else set())
    return [
        Heard(p.media, p.seconds, p.state)
        for p in list(driver.playback_log.values())
        if p.target in targets and p.seconds is not None and not p.media.startswith("tone:")
    ]


def playing_on(service: Service, phone: Any, channel_id: str, bridge_id: str | None) -> list[str]:
    """Media playing now to ``phone``'s leg (a real Asterisk) or that it hears (simulator)."""
    driver = service.driver
    if isinstance(driver, SimDriver):
        assert isinstance(phone, SimTestPhone)
        hearing = phone.phone.hears()
        return [hearing.detail] if hearing.kind == "playback" and hearing.detail else []
    assert isinstance(driver, AsteriskDriver)
    targets = {f"channel:{channel_id}"} | ({f"bridge:{bridge_id}"} if bridge_id else set())
    return [
        p.media
        for p in list(driver.playback_log.values())
        if p.target in targets and p.finished is None
    ]


async def wait_heard(
    service: Service,
    phone: Any,
    channel_id: str,
    bridge_id: str | None,
    count: int,
    timeout: float = 30.0,
) -> list[Heard]:
    return await eventually(
        lambda: heard_on(service, phone, channel_id, bridge_id),
        lambda media: len(media) >= count,
        timeout=timeout,
        what=f"{phone.name} hearing {count} media to the end",
    )


async def sound_seconds(service: Service, name: str, simulated: float) -> float:
    """How long the sound ``name`` lasts: ``simulated`` on the simulator; on a real Asterisk,
    the length of its ``en`` WAV file under Asterisk's data dir (``ASTDATADIR``, asked over
    ARI), which the test reads when Asterisk runs on this host (else the test is skipped)."""
    driver = service.driver
    if isinstance(driver, SimDriver):
        return simulated
    assert isinstance(driver, AsteriskDriver)
    status, answer = await driver.request("GET", "/asterisk/variable", variable="ASTDATADIR")
    assert status == 200, answer
    path = Path(answer["value"]) / "sounds" / "en" / f"{name}.wav"
    if not path.is_file():
        pytest.skip(f"Asterisk's sound {path} is not on this host")
    return wav_seconds(path)
