"""DTMF collection and matching for one owner leg: pure logic, no I/O, an injected clock.

The call task feeds digits (``on_digit``) and timer expiries (``on_timeout``) and gets back what
to do: wait until a deadline, or run a match. States (SPEC §5):

* unarmed — the binding digit on a listened leg arms the collector for that leg;
* armed — digits from the armed leg are appended (the binding digit too); each restarts the
  inter-digit timer; digits from other legs are ignored; the 33rd digit ends the attempt;
* evaluation — on timeout: exact ``numbers`` first, then ``patterns`` in order (regex search);
  early match when the digits equal a number and nothing longer could still match.

Regex work of one code (every early-match analysis while digits arrive, then the final
search over all patterns) shares ONE budget, ``REGEX_BUDGET_S``: a document of backtracking
patterns costs the event loop at most that much per code, never per pattern. The budget is
counted in the thread's CPU time: a process the OS paused (a busy machine) is not charged for the
pause, so an ordinary code never fails for want of time it did not use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from time import thread_time
from typing import Any

from ..metaflows.documents import MAX_DIGITS, EffectiveMetaflows, Node

# The whole regex evaluation of one code (all patterns, early-match analysis included).
REGEX_BUDGET_S = 0.01
# regex's own timeout is wall time: a call cut short while CPU budget remains was paused by the
# OS, and is tried again (at most this often) with what is left.
PAUSED_RETRIES = 3
_SPENT: Any = object()  # the budget ran out before the regex call finished


def _within(budget_end: float, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(*args, timeout=seconds_left, **kwargs)`` within the CPU budget ending at
    ``budget_end`` (thread time), or ``_SPENT``."""
    for _ in range(PAUSED_RETRIES + 1):
        left = budget_end - thread_time()
        if left <= 0:
            return _SPENT
        try:
            return call(*args, timeout=left, **kwargs)
        except TimeoutError:
            continue
    return _SPENT


@dataclass(frozen=True)
class Match:
    key: str  # the number, or the pattern source
    kind: str  # "number" or "pattern"
    node: Node
    collected: str
    captures: tuple[str, ...]
    leg: str  # the leg that pressed the digits


@dataclass(frozen=True)
class NoMatch:
    collected: str
    leg: str
    reason: str  # "no_match", "too_long", "regex_timeout"


Outcome = Match | NoMatch | None


@dataclass
class Collector:
    """One owner's collector. ``listen`` holds the legs whose digits it hears."""

    metaflows: EffectiveMetaflows
    listen: frozenset[str]
    armed_leg: str | None = None
    digits: list[str] = field(default_factory=list)
    deadline: float | None = None
    regex_budget: float = REGEX_BUDGET_S  # seconds of regex work left for this code

    @property
    def armed(self) -> bool:
        return self.armed_leg is not None

    def on_digit(self, leg: str, digit: str, now: float) -> Outcome:
        """A digit ended on ``leg``. Returns a match/no-match when the attempt is over."""
        if self.armed_leg is None:
            if leg in self.listen and digit == self.metaflows.binding_digit:
                self.armed_leg = leg
                self.digits = []
                self.regex_budget = REGEX_BUDGET_S
                self.deadline = now + self.metaflows.digit_timeout_ms / 1000
            return None
        if leg != self.armed_leg:
            return None
        self.digits.append(digit)
        if len(self.digits) > MAX_DIGITS:
            return self._finish(NoMatch("".join(self.digits), leg, "too_long"))
        self.deadline = now + self.metaflows.digit_timeout_ms / 1000
        collected = "".join(self.digits)
        if collected in self.metaflows.numbers and not self._longer_possible(collected):
            return self._finish(self._number(collected, leg))
        return None

    def on_timeout(self, now: float) -> Outcome:
        if self.armed_leg is None or self.deadline is None or now < self.deadline:
            return None
        leg = self.armed_leg
        collected = "".join(self.digits)
        if collected in self.metaflows.numbers:
            return self._finish(self._number(collected, leg))
        if not self.metaflows.patterns:
            return self._finish(NoMatch(collected, leg, "no_match"))
        budget_end = thread_time() + self.regex_budget
        for pattern in self.metaflows.patterns:
            found = _within(budget_end, pattern.compiled.search, collected)
            if found is _SPENT:
                return self._finish(NoMatch(collected, leg, "regex_timeout"))
            if found is not None:
                captures = tuple(group or "" for group in found.groups())
                return self._finish(
                    Match(pattern.source, "pattern", pattern.node, collected, captures, leg)
                )
        return self._finish(NoMatch(collected, leg, "no_match"))

    def reset(self) -> None:
        self.armed_leg = None
        self.digits = []
        self.deadline = None

    def _finish(self, outcome: Match | NoMatch) -> Match | NoMatch:
        self.reset()
        return outcome

    def _number(self, collected: str, leg: str) -> Match:
        return Match(collected, "number", self.metaflows.numbers[collected], collected, (), leg)

    def _longer_possible(self, collected: str) -> bool:
        """Could more digits still lead to another code? Another number that extends these
        digits, or a pattern that can still match from their start (see docs/decisions.md)."""
        if collected in self.metaflows.number_prefixes:
            return True
        if len(collected) >= MAX_DIGITS or not self.metaflows.patterns:
            return False
        started = thread_time()
        budget_end = started + self.regex_budget
        try:
            for pattern in self.metaflows.patterns:
                found = _within(budget_end, pattern.compiled.match, collected, partial=True)
                if found is not None:
                    return True  # it may match (or the budget ran out: let the timeout decide)
            return False
        finally:
            self.regex_budget = max(0.0, self.regex_budget - (thread_time() - started))


def listened_legs(listen_on: str, owner: str, others: frozenset[str]) -> frozenset[str]:
    """``listen_on`` is relative to the owner: self, peer (the other party) or both."""
    if listen_on == "peer":
        return others
    if listen_on == "both":
        return others | {owner}
    return frozenset({owner})


def new_collector(metaflows: EffectiveMetaflows, owner: str, others: frozenset[str]) -> Collector:
    return Collector(metaflows, listened_legs(metaflows.listen_on, owner, others))


__all__ = ["Collector", "Match", "NoMatch", "listened_legs", "new_collector"]
