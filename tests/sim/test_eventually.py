"""eventually(): waits for state with no event, and says what it saw when it gives up."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest

from ari_metaflows.testing.eventually import eventually


async def test_returns_the_first_good_answer_of_a_sync_probe() -> None:
    counter = itertools.count()
    assert await eventually(lambda: next(counter), lambda n: n >= 3, interval=0.001) == 3


async def test_awaits_an_async_probe() -> None:
    answers = iter([None, "", "ready"])

    async def probe() -> str | None:
        await asyncio.sleep(0)
        return next(answers)

    assert await eventually(probe, interval=0.001) == "ready"


async def test_timeout_shows_the_last_value() -> None:
    with pytest.raises(
        AssertionError, match=r"the queue: still not true after 0.05s \(last value: \[1, 2\]\)"
    ):
        await eventually(lambda: [1, 2], lambda v: len(v) > 2, timeout=0.05, what="the queue")


async def test_assertions_are_retried_and_the_last_one_is_shown() -> None:
    tries = itertools.count(1)

    def probe() -> int:
        n = next(tries)
        assert n > 1000, f"only {n}"
        return n

    with pytest.raises(AssertionError, match=r"last error: AssertionError: only \d+") as caught:
        await eventually(probe, timeout=0.05, interval=0.001)
    assert isinstance(caught.value.__cause__, AssertionError)


async def test_listed_exceptions_are_retried() -> None:
    answers: Iterator[int | Exception] = iter(
        [ConnectionError("refused"), ConnectionError("refused"), 200]
    )

    def probe() -> int:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert await eventually(probe, retry_on=(ConnectionError,), interval=0.001) == 200


async def test_other_exceptions_propagate_at_once() -> None:
    calls = 0

    def probe() -> bool:
        nonlocal calls
        calls += 1
        raise KeyError("gone")

    with pytest.raises(KeyError):
        await eventually(probe, timeout=5)
    assert calls == 1


async def test_a_hanging_probe_fails_with_a_clear_message() -> None:
    async def probe() -> bool:
        await asyncio.sleep(3600)
        return True

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(AssertionError, match=r"the probe: the probe hung past 0\.05s"):
        await eventually(probe, timeout=0.05, what="the probe")
    assert loop.time() - started < 30  # given a second or so, not the hour it asked for
