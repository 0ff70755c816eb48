"""The garbage-collector tuning ``serve`` applies (docs/performance.md, "The miss, found").

A network read of a DTMF storm holds a few thousand parsed events at once; with Python's default
young threshold they are promoted to the oldest generation while still queued, and full
collections over every tracked call follow. Tuned, such a burst stays young.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator

import pytest

from ari_metaflows.app import GC_YOUNG_THRESHOLD, tune_garbage_collector

BURST = 1500  # events in flight at once: ~1.6 MB of JSON, a few network reads


def dtmf_event(n: int) -> bytes:
    """A ChannelDtmfReceived as Asterisk 22 sends it (shape of ../shared/ari-captures)."""
    channel = {
        "id": f"1795484511.{n}",
        "name": f"PJSIP/alice-{n:08x}",
        "state": "Up",
        "protocol_id": f"{n}@pbx",
        "caller": {"name": "Alice", "number": "1001"},
        "connected": {"name": "Bob", "number": "1002"},
        "accountcode": "",
        "dialplan": {
            "context": "default",
            "exten": "1002",
            "priority": 3,
            "app_name": "Stasis",
            "app_data": "metaflows,dial,PJSIP/bob",
        },
        "creationtime": "2026-11-24T01:00:00.000+0000",
        "language": "en",
        "channelvars": {"METAFLOWS_ACCOUNT_ID": "acc", "METAFLOWS_USER_ID": f"u{n}"},
    }
    event = {
        "type": "ChannelDtmfReceived",
        "timestamp": "2026-11-24T01:00:01.000+0000",
        "digit": "1",
        "duration_ms": 100,
        "channel": channel,
        "asterisk_id": "02:42:ac:11:00:02",
        "application": "metaflows",
    }
    return json.dumps(event).encode()


@pytest.fixture
def restored_thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*saved)


def in_flight_events_in_oldest_generation() -> int:
    frames = [dtmf_event(n) for n in range(BURST)]
    gc.collect()  # every generation's count starts at zero
    in_flight = [json.loads(frame) for frame in frames]  # one read's worth, not yet consumed
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    return sum(1 for event in in_flight if id(event) in oldest or id(event["channel"]) in oldest)


def test_a_burst_of_events_stays_young_once_tuned(restored_thresholds: None) -> None:
    gc.set_threshold(700, 10, 10)  # Python's default
    tune_garbage_collector()
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 10, 10)
    assert in_flight_events_in_oldest_generation() == 0


def test_untuned_a_burst_reaches_the_oldest_generation(restored_thresholds: None) -> None:
    """The problem the tuning solves, shown on this interpreter: the test above is not vacuous."""
    gc.set_threshold(700, 10, 10)
    assert in_flight_events_in_oldest_generation() > 0
