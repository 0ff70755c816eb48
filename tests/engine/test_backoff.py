"""The one backoff rule behind reconnects and database retries."""

from __future__ import annotations

from ari_metaflows.backoff import Backoff


def test_delays_double_up_to_the_maximum_within_the_jitter() -> None:
    backoff = Backoff(0.5, 4.0, jitter=0.2)
    nominal = [0.5, 1.0, 2.0, 4.0, 4.0]
    for expected in nominal:
        assert expected * 0.8 <= backoff.next_delay() <= expected * 1.2


def test_reset_starts_again_from_the_first_delay() -> None:
    backoff = Backoff(1.0, 30.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(3)] == [1.0, 2.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0
