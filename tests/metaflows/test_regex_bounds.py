"""Hostile regular expressions (issue 17 item 1): refused at save, compiled with bounds off the
event loop, one time budget per code; the loop never stalls more than 20 ms."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient

from ari_metaflows.calls.collector import REGEX_BUDGET_S, Match, NoMatch, new_collector
from ari_metaflows.errors import ValidationFailed
from ari_metaflows.metaflows import regex_guard
from ari_metaflows.metaflows.documents import effective_metaflows, validate_document
from ari_metaflows.metaflows.store import MetaflowStore, Owner

from ..conftest import ADMIN_TOKEN
from ..helpers.loop_watchdog import MAX_STALL_MS, watch_loop

Client = TestClient[Any, Any]
ADMIN = {"X-Auth-Token": ADMIN_TOKEN}
PATH = "/v2/accounts/acc1/metaflows"
PLAY = {"module": "play", "data": {"id": "beep"}}

HOSTILE = [
    "x{10000000}",  # the 5.8 s compile
    "x{3000000}",
    r"(\d{1000}){1000}",
    r"1{33}",
    r"1{0,33}",
    r"(\d{8}){8}",  # each bound fine, their product 64 > 32
    r"((1{2}){4}){5}",
    r"\d{20}\d{20}",  # needs 40 digits: can never match a code
    r"(?:1234){e<=3}",  # fuzzy matching in `regex`, literal braces in `re`: refused
    r"1\{2\}",
    r"[{]",
    r"[[:digit:]]",  # a POSIX class in one engine, a nested set in the other
    r"(?R)",
    r"\p{N}",
    r"(",
    "1" * 257,
]
FINE = [
    r"2(\d+)",
    r"^\*7(\d{2,4})$",
    r"^(\d)\1$",
    r"(?<=1)2",
    r"[0-9#*]{1,32}",
    r"(\d{4}){8}",
    r"^1{6}(1|11)+2",
]


@pytest.mark.parametrize("pattern", HOSTILE)
def test_hostile_patterns_are_refused_by_the_checks(pattern: str) -> None:
    assert regex_guard.check_pattern(pattern) is not None


@pytest.mark.parametrize("pattern", FINE)
def test_ordinary_patterns_pass_the_checks(pattern: str) -> None:
    assert regex_guard.check_pattern(pattern) is None


def test_checking_the_worst_pattern_is_quick() -> None:
    started = time.thread_time()
    for pattern in HOSTILE * 10:
        regex_guard.check_pattern(pattern)
    assert (time.thread_time() - started) * 1000 < MAX_STALL_MS


def test_too_many_patterns_are_a_validation_error() -> None:
    patterns = {f"^{i}$": PLAY for i in range(regex_guard.MAX_PATTERNS_PER_DOCUMENT + 1)}
    with pytest.raises(ValidationFailed) as info:
        validate_document({"patterns": patterns})
    errors = info.value.errors
    assert errors["patterns"]["maxProperties"]["target"] == 100
    validate_document({"patterns": dict(list(patterns.items())[:100])})


async def test_the_child_compile_is_bounded_and_leaves_the_loop_free() -> None:
    """What got past no check (here: called directly) still cannot hurt: the child runs out of
    memory or time, and the loop never waits on it."""
    async with watch_loop() as watch:
        started = time.perf_counter()
        problems = await regex_guard._compile_in_child(["x{10000000}", "2(\\d+)"])
        elapsed = time.perf_counter() - started
    assert "x{10000000}" in problems
    assert elapsed < regex_guard.COMPILE_TIMEOUT_S + 2
    assert watch.ticks > 0
    assert watch.max_busy_ms < MAX_STALL_MS, watch


async def test_vetting_reports_engine_errors_and_remembers_good_patterns() -> None:
    good = r"^\*8(\d{3})$"
    assert await regex_guard.vet_patterns([good]) == {}
    assert good in regex_guard._vetted
    assert await regex_guard.vet_patterns([good]) == {}  # no child the second time


@pytest.mark.parametrize("pattern", HOSTILE)
async def test_api_refuses_a_hostile_pattern_without_stalling_and_keeps_the_document(
    client: Client, pattern: str
) -> None:
    before = await client.post(PATH, json={"data": {"patterns": {"^5$": PLAY}}}, headers=ADMIN)
    assert before.status == 200
    stored = (await before.json())["data"]
    async with watch_loop() as watch:
        response = await client.post(
            PATH, json={"data": {"patterns": {pattern: PLAY}}}, headers=ADMIN
        )
        payload = await response.json()
    assert response.status == 400, payload
    assert payload["message"] == "validation error"
    assert any(key.startswith("patterns") for key in payload["data"])
    assert watch.max_busy_ms < MAX_STALL_MS, watch
    after = await (await client.get(PATH, headers=ADMIN)).json()
    assert after["data"] == stored


async def test_api_refuses_too_many_patterns_and_keeps_the_document(client: Client) -> None:
    patterns = {f"^{i}(1|11)+2$": PLAY for i in range(101)}
    async with watch_loop() as watch:
        response = await client.post(PATH, json={"data": {"patterns": patterns}}, headers=ADMIN)
    assert response.status == 400
    assert "patterns" in (await response.json())["data"]
    assert watch.max_busy_ms < MAX_STALL_MS, watch
    assert (await (await client.get(PATH, headers=ADMIN)).json())["data"] == {}


async def test_api_accepts_a_full_document_of_fine_patterns_without_stalling(
    client: Client,
) -> None:
    patterns = {f"^{i:03d}(1|11)+2|9{{{1 + i % 32}}}": PLAY for i in range(100)}
    async with watch_loop() as watch:
        response = await client.post(PATH, json={"data": {"patterns": patterns}}, headers=ADMIN)
    assert response.status == 200, await response.text()
    assert list((await response.json())["data"]["patterns"]) == list(patterns)
    assert watch.max_busy_ms < MAX_STALL_MS, watch


def _worst_levels() -> list[dict[str, Any]]:
    """Three documents (account, device, user) of 100 backtracking patterns each."""
    levels = []
    for level in range(3):
        patterns = {f"^1{{6}}(1|11)+2|9{{{1 + i % 32}}}|{level}{i:03d}": PLAY for i in range(100)}
        levels.append(validate_document({"patterns": patterns}))
    return levels


async def test_one_code_against_300_backtracking_patterns_has_one_budget() -> None:
    """The issue's 4.4 s stall: 300 patterns that each backtrack, one 31-digit code."""
    levels = _worst_levels()
    async with watch_loop() as watch:
        await regex_guard.warm(regex_guard_sources(levels))
        metaflows = effective_metaflows(levels)
        assert len(metaflows.patterns) == 300
        collector = new_collector(metaflows, "caller", frozenset())
        now = 0.0
        collector.on_digit("caller", "*", now)
        for _ in range(31):
            now += 0.1
            assert collector.on_digit("caller", "1", now) is None
        started = time.thread_time()
        outcome = collector.on_timeout(now + 10)
        spent = time.thread_time() - started
    assert isinstance(outcome, NoMatch)
    assert outcome.reason == "regex_timeout"
    assert spent < REGEX_BUDGET_S + 0.005
    assert watch.max_busy_ms < MAX_STALL_MS, watch


async def test_early_match_analysis_shares_the_budget_of_the_code() -> None:
    """A number that is a prefix of a backtracking pattern's input: every digit asks
    "could a pattern still match"; together they stay within one budget."""
    levels = _worst_levels()
    levels[0]["numbers"] = {"1" * n: PLAY for n in range(1, 32)}
    await regex_guard.warm(regex_guard_sources(levels))
    collector = new_collector(effective_metaflows(levels), "caller", frozenset())
    collector.on_digit("caller", "*", 0.0)
    async with watch_loop() as watch:
        started = time.thread_time()
        for i in range(31):
            collector.on_digit("caller", "1", i * 0.1)
        spent = time.thread_time() - started
    assert spent < REGEX_BUDGET_S + 0.005
    assert watch.max_busy_ms < MAX_STALL_MS, watch
    assert collector.regex_budget < REGEX_BUDGET_S


def test_an_ordinary_code_still_matches_within_the_budget() -> None:
    metaflows = effective_metaflows(
        [
            validate_document(
                {"patterns": {r"^2(\d+)$": {"module": "transfer"}}, "numbers": {"9": PLAY}}
            )
        ]
    )
    collector = new_collector(metaflows, "caller", frozenset())
    for digit in "*2345":
        collector.on_digit("caller", digit, 0.0)
    outcome = collector.on_timeout(10.0)
    assert isinstance(outcome, Match)
    assert outcome.captures == ("345",)


async def test_a_stored_pattern_from_before_the_checks_is_skipped_not_compiled(
    store: MetaflowStore,
) -> None:
    """A document written before issue 17 (straight into the store) cannot stall a call."""
    legacy = {"patterns": {"x{10000000}": PLAY, "^2(\\d+)$": PLAY}}
    await store.put(Owner.account("acc1"), json.loads(json.dumps(legacy)))
    stored = (await store.get(Owner.account("acc1"))).document
    async with watch_loop() as watch:
        await regex_guard.warm(regex_guard_sources([stored]))
        metaflows = effective_metaflows([stored])
    assert [pattern.source for pattern in metaflows.patterns] == ["^2(\\d+)$"]
    assert watch.max_busy_ms < MAX_STALL_MS, watch


def regex_guard_sources(levels: list[Any]) -> list[str]:
    from ari_metaflows.metaflows.documents import pattern_sources

    return pattern_sources(levels)


class _PausedOnce:
    """A compiled pattern whose first search is cut short by regex's wall-clock timeout, as
    when the OS pauses the process mid-search on a busy machine."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.calls = 0

    def search(self, text: str, timeout: float) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise TimeoutError("regex timed out")
        return self.compiled.search(text, timeout=timeout)


def test_a_pause_of_the_process_is_not_charged_to_the_code() -> None:
    """The budget is CPU time: a search cut short by wall time while budget remains is tried
    again, so an ordinary code matches on a busy machine."""
    metaflows = effective_metaflows(
        [validate_document({"patterns": {r"^2(\d+)$": {"module": "transfer"}}})]
    )
    paused = _PausedOnce(metaflows.patterns[0].compiled)
    patterns = (dataclasses.replace(metaflows.patterns[0], compiled=cast(Any, paused)),)
    collector = new_collector(
        dataclasses.replace(metaflows, patterns=patterns), "caller", frozenset()
    )
    for digit in "*2345":
        collector.on_digit("caller", digit, 0.0)
    outcome = collector.on_timeout(10.0)
    assert isinstance(outcome, Match), outcome
    assert outcome.captures == ("345",)
    assert paused.calls == 2
