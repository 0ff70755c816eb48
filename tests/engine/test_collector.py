"""DTMF collectors with a controllable clock (SPEC §5)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ari_metaflows.calls.collector import Collector, Match, NoMatch, listened_legs, new_collector
from ari_metaflows.metaflows.documents import effective_metaflows, validate_document


def collector(listen_on: str = "self", **document: Any) -> Collector:
    metaflows = effective_metaflows([validate_document({"listen_on": listen_on, **document})])
    return new_collector(metaflows, "caller", frozenset({"callee"}))


SEED: dict[str, Any] = {
    "numbers": {"9": {"module": "record_call", "data": {"action": "start"}}},
    "patterns": {"2(\\d+)": {"module": "transfer"}},
}


def press(
    c: Collector, digits: str, leg: str = "caller", start: float = 0.0, gap: float = 0.1
) -> tuple[Match | NoMatch | None, float]:
    """Press digits 100 ms apart; return the first outcome and the time it came."""
    now = start
    for digit in digits:
        outcome = c.on_digit(leg, digit, now)
        if outcome is not None:
            return outcome, now
        now += gap
    return None, now


def test_star_nine_fires_at_once_because_nothing_longer_can_match() -> None:
    c = collector(**SEED)
    outcome, _ = press(c, "*9")
    assert isinstance(outcome, Match)
    assert (outcome.key, outcome.kind, outcome.node.module) == ("9", "number", "record_call")
    assert not c.armed


def test_star_two_digits_waits_for_the_timeout_then_captures() -> None:
    c = collector(**SEED)
    outcome, _ = press(c, "*21234")
    assert outcome is None
    assert c.deadline is not None
    assert c.on_timeout(c.deadline - 0.001) is None
    result = c.on_timeout(c.deadline)
    assert isinstance(result, Match)
    assert result.kind == "pattern"
    assert result.captures == ("1234",)
    assert result.collected == "21234"
    assert result.node.module == "transfer"


def test_default_timeout_is_800_ms_and_restarts_on_each_digit() -> None:
    c = collector(**SEED)
    c.on_digit("caller", "*", 0.0)
    assert c.deadline == 0.8
    c.on_digit("caller", "2", 0.5)
    assert c.deadline == 1.3


def test_numbers_win_over_patterns() -> None:
    c = collector(numbers={"21": {"module": "hangup"}}, patterns={"2(\\d+)": {"module": "break"}})
    press(c, "*21")
    assert c.deadline is not None
    result = c.on_timeout(c.deadline)
    assert isinstance(result, Match)
    assert (result.kind, result.node.module) == ("number", "hangup")


def test_patterns_first_match_wins_in_order_and_search_is_unanchored() -> None:
    c = collector(patterns={"5$": {"module": "hangup"}, "(\\d)5": {"module": "break"}})
    press(c, "*345")
    assert c.deadline is not None
    result = c.on_timeout(c.deadline)
    assert isinstance(result, Match)
    assert result.key == "5$"
    c2 = collector(patterns={"(\\d)5": {"module": "break"}, "5$": {"module": "hangup"}})
    press(c2, "*345")
    assert c2.deadline is not None
    second = c2.on_timeout(c2.deadline)
    assert isinstance(second, Match)
    assert (second.key, second.captures) == ("(\\d)5", ("4",))


def test_unmatched_optional_groups_capture_empty_strings() -> None:
    c = collector(patterns={"^1(2)?(3)?$": {"module": "hangup"}})
    press(c, "*13")
    assert c.deadline is not None
    result = c.on_timeout(c.deadline)
    assert isinstance(result, Match)
    assert result.captures == ("", "3")


def test_no_match_disarms() -> None:
    c = collector(**SEED)
    press(c, "*77")
    assert c.deadline is not None
    result = c.on_timeout(c.deadline)
    assert isinstance(result, NoMatch)
    assert result.reason == "no_match"
    assert not c.armed
    assert c.on_digit("caller", "9", 5.0) is None  # unarmed again: 9 alone does nothing


def test_a_longer_number_makes_a_prefix_wait() -> None:
    c = collector(numbers={"1": {"module": "hangup"}, "12": {"module": "break"}})
    outcome, _ = press(c, "*1")
    assert outcome is None
    outcome, _ = press(c, "2", start=0.2)
    assert isinstance(outcome, Match)
    assert outcome.key == "12"


def test_binding_digit_twice_collects_it() -> None:
    c = collector(patterns={"^\\*$": {"module": "hangup"}})
    press(c, "**")
    assert c.deadline is not None
    result = c.on_timeout(c.deadline)
    assert isinstance(result, Match)
    assert result.collected == "*"


def test_thirty_third_digit_ends_the_attempt() -> None:
    c = collector(patterns={"^(\\d+)$": {"module": "hangup"}})
    outcome, _ = press(c, "*" + "1" * 33)
    assert isinstance(outcome, NoMatch)
    assert outcome.reason == "too_long"
    assert len(outcome.collected) == 33


def test_other_legs_digits_are_ignored_while_armed() -> None:
    c = collector(listen_on="both", **SEED)
    c.on_digit("caller", "*", 0.0)
    assert c.on_digit("callee", "9", 0.1) is None
    outcome = c.on_digit("caller", "9", 0.2)
    assert isinstance(outcome, Match)
    assert outcome.leg == "caller"


def test_listen_on_is_relative_to_the_owner() -> None:
    others = frozenset({"callee"})
    assert listened_legs("self", "caller", others) == {"caller"}
    assert listened_legs("peer", "caller", others) == {"callee"}
    assert listened_legs("both", "caller", others) == {"caller", "callee"}
    peer = collector(listen_on="peer", **SEED)
    assert press(peer, "*9")[0] is None
    outcome, _ = press(peer, "*9", leg="callee")
    assert isinstance(outcome, Match)
    assert outcome.leg == "callee"


def test_hash_as_binding_digit() -> None:
    c = collector(binding_digit="#", **SEED)
    assert press(c, "*9")[0] is None
    assert isinstance(press(c, "#9")[0], Match)


def test_catastrophic_pattern_gives_up_instead_of_stalling() -> None:
    c = collector(patterns={"^(\\d+)+x$": {"module": "hangup"}})
    press(c, "*" + "1" * 30)
    assert c.deadline is not None
    result = c.on_timeout(c.deadline)
    assert isinstance(result, NoMatch)
    assert result.reason in ("regex_timeout", "no_match")


# -- property: the collector agrees with a plain reference model --------------------------------

NUMBERS = {"1": "a", "12": "b", "9": "c", "345": "d"}
PATTERNS = {"^2(\\d+)": "e", "7$": "f", "(\\d)#": "g"}


def reference(digits: str) -> tuple[str, str] | None:
    """What should run for `digits` pressed after the binding digit, once the timer fires."""
    if digits in NUMBERS:
        return ("number", digits)
    import re

    for source in PATTERNS:
        if re.search(source, digits):
            return ("pattern", source)
    return None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789#", min_size=0, max_size=40))
def test_matches_a_reference_model_for_any_digit_stream(digits: str) -> None:
    document = validate_document(
        {
            "numbers": {k: {"module": "hangup"} for k in NUMBERS},
            "patterns": {k: {"module": "hangup"} for k in PATTERNS},
        }
    )
    c = new_collector(effective_metaflows([document]), "caller", frozenset())
    outcome: Any = c.on_digit("caller", "*", 0.0)
    now = 0.0
    for digit in digits:
        now += 0.1
        outcome = c.on_digit("caller", digit, now)
        if outcome is not None:
            break
    if outcome is None:
        assert c.deadline is not None
        outcome = c.on_timeout(c.deadline)
    if isinstance(outcome, NoMatch) and outcome.reason == "too_long":
        assert len(digits) > 32
        return
    collected = outcome.collected
    assert digits.startswith(collected)
    expected = reference(collected)
    if expected is None:
        assert isinstance(outcome, NoMatch)
    else:
        assert isinstance(outcome, Match)
        assert (outcome.kind, outcome.key) == expected
    assert not c.armed
    assert len(c.digits) == 0
