"""A speech URL that has expired or was not signed with the service's secret is refused to
Asterisk itself (403 on the speech route), so the leg hears nothing and the tts flow fails —
on the simulator and on a real Asterisk (whose res_http_media_cache gets the 403)."""

from __future__ import annotations

import logging

import pytest

from ari_metaflows.config import ListenAddress
from ari_metaflows.features.tts import TtsFeature
from ari_metaflows.features.tts.media import MediaSigner, SpeechMedia
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.testing.eventually import eventually

from ..helpers.engine_service import ACCOUNT, FAST, Service, connected_call, the_call
from ..helpers.hearing import heard_on

TEXT = "This should never be heard."


@pytest.mark.parametrize("fault", ["expired", "forged"])
async def test_a_refused_speech_url_fails_the_flow_and_nothing_is_heard(
    service: Service, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    await service.app.start_api(ListenAddress("127.0.0.1", 0))
    speech = service.app.speech
    assert speech is not None
    feature = service.engine.features.by_name["tts"]
    assert isinstance(feature, TtsFeature)
    if fault == "expired":
        speech.ttl = -60  # signed, but a minute past its expiry
    else:  # the flow signs with another secret; the route checks with the service's
        feature.speech = SpeechMedia(
            speech.cache, MediaSigner(b"not-the-service-secret", speech.signer.base_url)
        )
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
    call = the_call(service)
    with caplog.at_level(logging.WARNING):
        await alice.press("*5", FAST)
        await eventually(
            lambda: service.metrics.codes.get(("tts", "failed"), 0),
            lambda failed: failed == 1,
            timeout=30,
            what="the tts flow failing",
        )
    assert "tts: Asterisk could not play the media" in caplog.text
    refused = [f for f in speech.fetches if f.status == 403]
    assert refused, list(speech.fetches)
    assert all(f.status == 403 for f in speech.fetches)  # nothing was served
    assert speech.served == 0
    # A real Asterisk reports the playback it could not fetch (failed); no phone heard speech.
    heard = heard_on(service, alice, call.legs["caller"].channel_id, call.bridge_id)
    assert [p.state for p in heard if p.state != "failed"] == []
    assert await alice.in_call()  # the hangup child did not run
    assert await bob.in_call()
