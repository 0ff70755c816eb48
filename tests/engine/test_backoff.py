"""The one retry policy behind reconnects, the database wait, the listener and the writers."""

from __future__ import annotations

import random
import statistics

import pytest

from ari_metaflows.app import Retries
from ari_metaflows.backoff import Backoff


def test_delays_grow_by_the_multiplier_up_to_the_maximum_within_the_jitter() -> None:
    delays = Backoff(0.5, 4.0, jitter=0.2).delays()
    for expected in [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]:
        assert expected * 0.8 <= delays.next_delay() <= min(expected * 1.2, 4.0)


def test_the_maximum_bounds_every_delay_jitter_included() -> None:
    delays = Backoff(1.0, 3.0, multiplier=3.0, jitter=0.5).delays()
    seen = [delays.next_delay() for _ in range(2000)]
    assert max(seen) <= 3.0
    assert min(seen[1:]) >= 1.5  # from the second on: nominal 3.0 less half of it


def test_a_custom_multiplier_and_no_jitter_are_exact() -> None:
    delays = Backoff(initial=0.1, maximum=1.0, multiplier=3.0, jitter=0.0).delays()
    assert [round(delays.next_delay(), 6) for _ in range(4)] == [0.1, 0.3, 0.9, 1.0]


def test_reset_starts_again_from_the_first_delay() -> None:
    delays = Backoff(1.0, 30.0, jitter=0.0).delays()
    assert [delays.next_delay() for _ in range(3)] == [1.0, 2.0, 4.0]
    delays.reset()
    assert delays.next_delay() == 1.0


def test_jitter_spreads_waiters_over_the_whole_band() -> None:
    """Many parts retrying after the same outage must not retry in step."""
    random.seed(7)
    policy = Backoff(initial=10.0, maximum=100.0, jitter=0.2)
    firsts = [policy.delays().next_delay() for _ in range(2000)]
    assert min(firsts) >= 8.0
    assert max(firsts) <= 12.0
    assert min(firsts) < 8.2  # the band is used, edge to edge
    assert max(firsts) > 11.8
    assert 9.8 < statistics.mean(firsts) < 10.2
    assert len(set(firsts)) > 1900


def test_each_part_has_its_own_run_of_delays() -> None:
    policy = Backoff(1.0, 8.0, jitter=0.0)
    first, second = policy.delays(), policy.delays()
    assert [first.next_delay() for _ in range(3)] == [1.0, 2.0, 4.0]
    assert second.next_delay() == 1.0  # the policy itself holds no state


def test_the_policy_is_an_immutable_value() -> None:
    policy = Backoff(0.5, 30.0)
    assert policy == Backoff(initial=0.5, maximum=30.0, multiplier=2.0, jitter=0.2)
    with pytest.raises(AttributeError):
        policy.initial = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("initial", "maximum", "multiplier", "jitter"),
    [
        (0, 1, 2, 0.2),
        (-1, 1, 2, 0.2),
        (2, 1, 2, 0.2),
        (1, 2, 0.5, 0.2),
        (1, 2, 2, 1.0),
        (1, 2, 2, -0.1),
    ],
)
def test_nonsense_policies_are_refused(
    initial: float, maximum: float, multiplier: float, jitter: float
) -> None:
    with pytest.raises(ValueError, match=r"must be|need"):
        Backoff(initial, maximum, multiplier, jitter)


def test_every_retrying_part_of_the_service_uses_the_policy() -> None:
    retries = Retries()
    assert all(
        isinstance(policy, Backoff)
        for policy in (retries.ari, retries.database, retries.listener, retries.writers)
    )
