"""play and say finish when their media has, so children run after it (SPEC §6, issue 16
item 8): "say goodbye, then hang up" is heard whole; break ends the wait; a failed playback
fails the flow; the wait is bounded."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ari_metaflows.calls import playing
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.sim.model import HeardMedia
from ari_metaflows.testing.eventually import eventually
from ari_metaflows.testing.scenario import SimDriver

from ..helpers.engine_service import ACCOUNT, FAST, Service, connected_call, sim_only, the_call
from ..helpers.hearing import heard_on, playing_on, sound_seconds, wait_heard

GOODBYE = 1.2  # seconds the simulated "goodbye" lasts


async def doc(service: Service, **numbers: Any) -> None:
    await service.document(Owner.account(ACCOUNT), numbers=numbers)


def heard(phone: Any) -> list[HeardMedia]:
    return list(phone.phone.heard_media)


async def outcome(service: Service, module: str, result: str) -> None:
    await eventually(
        lambda: service.metrics.codes.get((module, result), 0),
        lambda count: count >= 1,
        what=f"a {module} flow ending {result}",
    )


async def test_goodbye_then_hangup_is_heard_whole(service: Service) -> None:
    if isinstance(service.driver, SimDriver):
        service.driver.sim.core.timing.sounds["goodbye"] = GOODBYE
    length = await sound_seconds(service, "goodbye", GOODBYE)
    await doc(
        service,
        **{
            "0": {
                "module": "play",
                "data": {"id": "goodbye", "leg": "both"},
                "children": {"_": {"module": "hangup"}},
            }
        },
    )
    alice, bob = await connected_call(service)
    call = the_call(service)
    legs = {alice: call.legs["caller"].channel_id, bob: call.legs["callee"].channel_id}
    await alice.press("*0", FAST)
    await eventually(
        lambda: playing_on(service, alice, legs[alice], call.bridge_id),
        lambda playing: "sound:goodbye" in playing,
        what="the goodbye playing",
    )
    assert await alice.in_call()  # still there while the goodbye plays
    await alice.wait_idle(timeout=length + 3)
    await bob.wait_idle()
    for phone in (alice, bob):
        (goodbye,) = heard_on(service, phone, legs[phone], call.bridge_id)
        assert goodbye.media == "sound:goodbye"
        assert goodbye.state == "done"
        assert goodbye.seconds >= length - 0.05  # the whole of it, not cut by the hangup
    await outcome(service, "play", "ok")


async def test_say_then_hangup_hears_every_digit(service: Service) -> None:
    driver = service.driver
    if isinstance(driver, SimDriver):
        per_character = driver.sim.core.timing.per_character
        length = 4 * per_character
    else:
        length = sum([await sound_seconds(service, f"digits/{d}", 0) for d in "4711"])
    await doc(
        service,
        **{
            "1": {
                "module": "say",
                "data": {"text": "4711", "type": "digits", "leg": "self"},
                "children": {"_": {"module": "hangup"}},
            }
        },
    )
    alice, bob = await connected_call(service)
    call = the_call(service)
    caller, callee = call.legs["caller"].channel_id, call.legs["callee"].channel_id
    await alice.press("*1", FAST)
    await alice.wait_idle(timeout=length + 5)
    (said,) = await wait_heard(service, alice, caller, None, 1, timeout=5)
    assert said.media == "digits:4711"
    assert said.seconds >= length - 0.05
    assert heard_on(service, bob, callee, call.bridge_id) == []  # self: the presser only


async def test_break_ends_the_wait_and_children_run(sim_service: Service) -> None:
    driver = sim_only(sim_service.driver)
    driver.sim.core.timing.sounds["long-story"] = 30.0
    await doc(
        sim_service,
        **{
            "1": {
                "module": "play",
                "data": {"id": "long-story", "leg": "both"},
                "children": {"_": {"module": "play", "data": {"id": "beep", "leg": "self"}}},
            },
            "2": {"module": "break"},
        },
    )
    alice, _bob = await connected_call(sim_service)
    await alice.press("*1", FAST)
    await alice.wait_hears("playback", "sound:long-story")
    await alice.press("*2", FAST)
    await alice.wait_hears("playback", "sound:beep", timeout=3)
    await outcome(sim_service, "play", "ok")
    story = heard(alice)[0]
    assert story.media == "sound:long-story"
    assert story.seconds < 10


async def test_a_failed_playback_fails_the_flow_and_children_do_not_run(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    await doc(
        service,
        **{
            "0": {
                "module": "play",
                "data": {"id": "http://127.0.0.1:9/missing.wav", "leg": "self"},
                "children": {"_": {"module": "hangup"}},
            }
        },
    )
    alice, bob = await connected_call(service)
    with caplog.at_level(logging.WARNING):
        await alice.press("*0", FAST)
        await outcome(service, "play", "failed")
    assert "Asterisk could not play the media" in caplog.text
    assert await alice.in_call()  # the hangup child did not run
    assert await bob.in_call()


async def test_the_wait_is_bounded(
    sim_service: Service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    driver = sim_only(sim_service.driver)
    driver.sim.core.timing.sounds["endless"] = 60.0
    monkeypatch.setattr(playing, "MEDIA_CAP", 0.5)
    await doc(
        sim_service,
        **{
            "0": {
                "module": "play",
                "data": {"id": "endless", "leg": "both"},
                "children": {"_": {"module": "hangup"}},
            }
        },
    )
    alice, _bob = await connected_call(sim_service)
    with caplog.at_level(logging.WARNING):
        await alice.press("*0", FAST)
        await alice.wait_hears("idle", timeout=3)
    assert "still playing after" in caplog.text
