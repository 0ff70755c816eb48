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
from ari_metaflows.features.tts.media import MediaFetch, SpeechMedia
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.sim.model import HeardMedia
from ari_metaflows.testing.eventually import eventually
from ari_metaflows.testing.scenario import SimDriver

from ..helpers.engine_service import ACCOUNT, FAST, Service, connected_call, the_call
from ..helpers.hearing import heard_on, playing_on, wait_heard

logger = logging.getLogger(__name__)
ASTERISK_CURL = "asterisk-libcurl-agent/1.0"  # res_http_media_cache's default curl_useragent

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


def fetched_by_asterisk(service: Service, media: str) -> list[MediaFetch]:
    """The requests the speech route answered for ``media``'s file (200 or 304)."""
    speech = service.app.speech
    assert speech is not None
    key = speech_file(service, media).stem
    return [f for f in speech.fetches if f.key == key and f.status in (200, 304)]


async def test_tts_is_heard_by_the_presser_for_the_length_of_the_speech(
    service: Service,
) -> None:
    base = await listening(service)
    await service.document(
        Owner.account(ACCOUNT),
        numbers={
            "5": {
                "module": "tts",
                "data": {"text": TEXT, "language": "en-US"},  # leg: Kazoo's default, self
                "children": {"_": {"module": "play", "data": {"id": "beep", "leg": "self"}}},
            }
        },
    )
    alice, bob = await connected_call(service)
    call = the_call(service)
    caller, callee = call.legs["caller"].channel_id, call.legs["callee"].channel_id
    await alice.press("*5", FAST)
    # The speech, then the child (the beep) after it: both heard to the end by alice.
    speech, beep = await wait_heard(service, alice, caller, None, 2)
    assert speech.media.startswith(f"sound:{base}/media/tts/")
    assert speech.state == "done"
    seconds = wav_seconds(speech_file(service, speech.media))
    assert seconds > 1.0
    # A real Asterisk times it from PlaybackStarted (before its download) to PlaybackFinished.
    slack = 0.2 if isinstance(service.driver, SimDriver) else 0.5
    logger.info("the speech lasts %.3f s; alice heard it for %.3f s", seconds, speech.seconds)
    assert speech.seconds == pytest.approx(seconds, abs=slack)
    assert beep.media == "sound:beep"
    assert heard_on(service, bob, callee, call.bridge_id) == []  # bob heard alice's voice only
    # Asterisk (res_http_media_cache through res_curl) downloaded the file from the service.
    fetches = fetched_by_asterisk(service, speech.media)
    assert [f.method for f in fetches] == ["GET"]
    if not isinstance(service.driver, SimDriver):
        assert fetches[0].user_agent == ASTERISK_CURL
    assert service.app.speech is not None
    assert service.app.speech.served == 1
    await outcome(service, "ok")


async def test_a_terminator_stops_the_speech_and_children_run(service: Service) -> None:
    await listening(service)
    await service.document(
        Owner.account(ACCOUNT),
        numbers={
            "6": {
                "module": "tts",
                "data": {"text": LONG_TEXT, "leg": "both", "terminators": ["#"]},
                "children": {"_": {"module": "play", "data": {"id": "beep", "leg": "self"}}},
            }
        },
    )
    alice, bob = await connected_call(service)
    call = the_call(service)
    caller, callee = call.legs["caller"].channel_id, call.legs["callee"].channel_id
    await alice.press("*6", FAST)
    await eventually(
        lambda: playing_on(service, alice, caller, call.bridge_id),
        lambda playing: any("/media/tts/" in media for media in playing),
        timeout=30,
        what="the speech playing",
    )
    await bob.press("1", FAST)  # not a terminator: the speech goes on
    await bob.press("#", FAST)  # bob hears it too (leg both): his # stops it
    speech, beep = await wait_heard(service, alice, caller, call.bridge_id, 2, timeout=10)
    assert beep.media == "sound:beep"
    full = wav_seconds(speech_file(service, speech.media))
    assert full > 8
    assert speech.seconds < full / 2
    assert heard_on(service, bob, callee, call.bridge_id)[0].media == speech.media
    assert fetched_by_asterisk(service, speech.media)
    await outcome(service, "ok")


async def test_no_engine_fails_the_flow_with_the_reason(
    service: Service, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await listening(service)
    assert service.app.speech is not None
    broken = SpeechMedia(
        SpeechCache(tmp_path, library=str(tmp_path / "missing" / "libespeak-ng.so")),
        service.app.speech.signer,
    )
    feature = service.engine.features.by_name["tts"]
    assert isinstance(feature, TtsFeature)
    feature.speech = broken
    with caplog.at_level(logging.INFO):
        assert await check_speech(broken) is False
    assert "tts: no speech on this server" in caplog.text
    await service.document(
        Owner.account(ACCOUNT),
        numbers={
            "5": {
                "module": "tts",
                "data": {"text": TEXT},
                "children": {"_": {"module": "hangup"}},
            }
        },
    )
    alice, bob = await connected_call(service)
    with caplog.at_level(logging.WARNING):
        await alice.press("*5", FAST)
        await outcome(service, "failed")
    assert "module tts failed: cannot load libespeak-ng" in caplog.text
    assert await alice.in_call()  # the call goes on; the child did not run
    assert await bob.in_call()


async def test_a_language_espeak_does_not_know_is_a_failed_flow(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    await listening(service)
    await service.document(
        Owner.account(ACCOUNT),
        numbers={"5": {"module": "tts", "data": {"text": TEXT, "language": "qq-ZZ"}}},
    )
    alice, _bob = await connected_call(service)
    with caplog.at_level(logging.WARNING):
        await alice.press("*5", FAST)
        await outcome(service, "failed")
    assert "no voice for language 'qq-zz'" in caplog.text
    call = the_call(service)
    assert heard_on(service, alice, call.legs["caller"].channel_id, call.bridge_id) == []


async def test_the_service_checks_its_engine_at_start(
    sim_service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        assert await sim_service.app.start_speech_check() is True  # as serve starts it
    assert "tts: espeak-ng" in caplog.text
    assert "ready" in caplog.text
