"""tts: real speech (eSpeak NG, off the loop), played by Asterisk over HTTP from the service's
own listener, heard by the right leg for the right length; terminators stop it; no engine is a
clear failure (SPEC §6, issue 16 items 2 and 8)."""

from __future__ import annotations

import logging
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from ari_metaflows.app import check_speech
from ari_metaflows.config import ListenAddress
from ari_metaflows.features.tts import TtsFeature
from ari_metaflows.features.tts.engine import SpeechCache, wav_seconds
from ari_metaflows.features.tts.media import SpeechMedia
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.sim.model import HeardMedia
from ari_metaflows.testing.eventually import eventually

from ..helpers.engine_service import ACCOUNT, FAST, Service, connected_call, sim_only

TEXT = "Thank you for calling. Goodbye."
LONG_TEXT = " ".join(["This announcement goes on for quite a while."] * 6)


async def listening(service: Service) -> str:
    """The REST API (and the speech route Asterisk fetches from) on a loopback port."""
    return await service.app.start_api(ListenAddress("127.0.0.1", 0))


def heard(phone: Any) -> list[HeardMedia]:
    return list(phone.phone.heard_media)


def speech_file(service: Service, media: str) -> Path:
    key = urllib.parse.urlsplit(media.removeprefix("sound:")).path.rpartition("/")[2]
    return Path(service.app.settings.data_dir) / "tts" / key


async def outcome(service: Service, result: str) -> None:
    await eventually(
        lambda: service.metrics.codes.get(("tts", result), 0),
        lambda count: count >= 1,
        what=f"a tts flow ending {result}",
        timeout=30,
    )


async def test_tts_is_heard_by_the_presser_for_the_length_of_the_speech(
    sim_service: Service,
) -> None:
    driver = sim_only(sim_service.driver)
    base = await listening(sim_service)
    await sim_service.document(
        Owner.account(ACCOUNT),
        numbers={
            "5": {
                "module": "tts",
                "data": {"text": TEXT, "language": "en-US"},  # leg: Kazoo's default, self
                "children": {"_": {"module": "play", "data": {"id": "beep", "leg": "self"}}},
            }
        },
    )
    alice, bob = await connected_call(sim_service)
    await alice.press("*5", FAST)
    await alice.wait_hears("playback", "sound:beep", timeout=30)  # the child, after the speech
    speech, beep = await eventually(lambda: heard(alice), lambda media: len(media) == 2)
    assert speech.media.startswith(f"sound:{base}/media/tts/")
    assert speech.state == "done"
    seconds = wav_seconds(speech_file(sim_service, speech.media))
    assert seconds > 1.0
    assert speech.seconds == pytest.approx(seconds, abs=0.2)
    assert beep.media == "sound:beep"
    assert heard(bob) == []  # bob heard alice's voice only
    assert ("GET", speech.media.removeprefix("sound:")) in driver.sim.core.remote_media.fetched
    assert sim_service.app.speech is not None
    assert sim_service.app.speech.served == 1
    await outcome(sim_service, "ok")


async def test_a_terminator_stops_the_speech_and_children_run(sim_service: Service) -> None:
    await listening(sim_service)
    await sim_service.document(
        Owner.account(ACCOUNT),
        numbers={
            "6": {
                "module": "tts",
                "data": {"text": LONG_TEXT, "leg": "both", "terminators": ["#"]},
                "children": {"_": {"module": "play", "data": {"id": "beep", "leg": "self"}}},
            }
        },
    )
    alice, bob = await connected_call(sim_service)
    await alice.press("*6", FAST)
    await eventually(
        lambda: alice.phone.hears(),
        lambda hearing: hearing.kind == "playback" and "/media/tts/" in hearing.detail,
        timeout=30,
        what="the speech playing",
    )
    await bob.press("1", FAST)  # not a terminator: the speech goes on
    await bob.press("#", FAST)  # bob hears it too (leg both): his # stops it
    await alice.wait_hears("playback", "sound:beep", timeout=5)
    speech = heard(alice)[0]
    full = wav_seconds(speech_file(sim_service, speech.media))
    assert speech.seconds < full / 2
    assert heard(bob)[0].media == speech.media
    await outcome(sim_service, "ok")


async def test_no_engine_fails_the_flow_with_the_reason(
    sim_service: Service, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await listening(sim_service)
    assert sim_service.app.speech is not None
    broken = SpeechMedia(
        SpeechCache(tmp_path, library=str(tmp_path / "missing" / "libespeak-ng.so")),
        sim_service.app.speech.signer,
    )
    feature = sim_service.engine.features.by_name["tts"]
    assert isinstance(feature, TtsFeature)
    feature.speech = broken
    with caplog.at_level(logging.INFO):
        assert await check_speech(broken) is False
    assert "tts: no speech on this server" in caplog.text
    await sim_service.document(
        Owner.account(ACCOUNT),
        numbers={
            "5": {
                "module": "tts",
                "data": {"text": TEXT},
                "children": {"_": {"module": "hangup"}},
            }
        },
    )
    alice, bob = await connected_call(sim_service)
    with caplog.at_level(logging.WARNING):
        await alice.press("*5", FAST)
        await outcome(sim_service, "failed")
    assert "module tts failed: cannot load libespeak-ng" in caplog.text
    assert await alice.in_call()  # the call goes on; the child did not run
    assert await bob.in_call()


async def test_a_language_espeak_does_not_know_is_a_failed_flow(
    sim_service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    await listening(sim_service)
    await sim_service.document(
        Owner.account(ACCOUNT),
        numbers={"5": {"module": "tts", "data": {"text": TEXT, "language": "qq-ZZ"}}},
    )
    alice, _bob = await connected_call(sim_service)
    with caplog.at_level(logging.WARNING):
        await alice.press("*5", FAST)
        await outcome(sim_service, "failed")
    assert "no voice for language 'qq-zz'" in caplog.text
    assert heard(alice) == []


async def test_the_service_checks_its_engine_at_start(
    sim_service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        assert await sim_service.app.start_speech_check() is True  # as serve starts it
    assert "tts: espeak-ng" in caplog.text
    assert "ready" in caplog.text
