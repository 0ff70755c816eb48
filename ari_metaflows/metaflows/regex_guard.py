"""Patterns from metaflow documents are untrusted: bound what they may cost before they run.

Three layers (rules in docs/decisions.md, issue 17):

1. ``check_pattern`` — microseconds, on the event loop: parse with Python's own regular
   expression parser (linear in the ≤ 256 characters, builds no program) and reject what cannot
   matter for ≤ 32 digits or would make the compiled program big: a repeat bound over 32,
   nested repeats whose bounds multiply past 32, a pattern that needs more than 32 characters,
   syntax the two engines read differently (braces, POSIX-like nested sets).
2. ``vet_patterns`` — the first compile of a pattern a client sent runs in a child process
   with a time limit and an address-space rlimit; only its verdict comes back.
3. ``compiled`` / ``warm`` — the in-process compile of a pattern that passed (1) is bounded by
   construction (a few ms at most); ``warm`` compiles a resolution's patterns one at a time,
   yielding to the loop in between, and keeps them in a bounded cache.

Matching is bounded separately: the collector gives one code's whole evaluation one budget.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import warnings
from collections import OrderedDict
from collections.abc import Iterable
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import regex

logger = logging.getLogger(__name__)

MAX_DIGITS = 32
MAX_PATTERN_LENGTH = 256
MAX_PATTERNS_PER_DOCUMENT = 100
COMPILE_TIMEOUT_S = 5.0
COMPILE_MEMORY_BYTES = 512 * 1024 * 1024
COMPILE_CPU_SECONDS = 4
_VETTED_CACHE_SIZE = 4096
_COMPILED_CACHE_SIZE = 4096
_MAX_CONCURRENT_VETTING = 2

_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT}
_BRACES = {ord("{"), ord("}")}


class _Rejected(Exception):
    pass


def check_pattern(source: str) -> str | None:
    """Why ``source`` is refused, or None when it is within the bounds (cheap, pure)."""
    if not source:
        return "a pattern must not be empty"
    if len(source) > MAX_PATTERN_LENGTH:
        return f"a pattern must not be more than {MAX_PATTERN_LENGTH} characters"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            parsed = sre_parse.parse(source)
    except (re.error, FutureWarning, DeprecationWarning) as exc:
        return f"invalid regular expression: {exc}"
    except (RecursionError, OverflowError, ValueError) as exc:
        return f"invalid regular expression: {type(exc).__name__}"
    try:
        _walk(parsed.data, 1)
        low, _high = parsed.getwidth()
    except _Rejected as exc:
        return str(exc)
    except (RecursionError, OverflowError):
        return "the regular expression is nested too deeply"
    if low > MAX_DIGITS:
        return f"the pattern needs at least {low} digits; a code has at most {MAX_DIGITS}"
    return None


def _walk(items: Any, product: int) -> None:
    for op, arg in items:
        if op in _REPEATS:
            low, high, sub = arg
            for bound in (low, high):
                if bound != sre.MAXREPEAT and bound > MAX_DIGITS:
                    raise _Rejected(
                        f"repeat bound {bound} is over {MAX_DIGITS}, the most digits in a code"
                    )
            factor = high if high != sre.MAXREPEAT else max(low, 1)
            if product * factor > MAX_DIGITS:
                raise _Rejected(
                    f"nested repeats multiply to more than {MAX_DIGITS}, the most digits in a code"
                )
            _walk(sub.data, product * max(factor, 1))
        elif op in (sre.LITERAL, sre.NOT_LITERAL):
            if arg in _BRACES:
                raise _Rejected("braces are only allowed as repeat bounds like {2} or {1,4}")
        elif op is sre.SUBPATTERN:
            _walk(arg[-1].data, product)
        elif op is sre.BRANCH:
            for branch in arg[1]:
                _walk(branch.data, product)
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            _walk(arg[1].data, product)
        elif op is sre.ATOMIC_GROUP:
            _walk(arg.data, product)
        elif op is sre.GROUPREF_EXISTS:
            _group, yes, no = arg
            _walk(yes.data, product)
            if no is not None:
                _walk(no.data, product)
        elif op is sre.IN:
            for member_op, member in arg:
                if member_op in (sre.LITERAL, sre.NOT_LITERAL) and member in _BRACES:
                    raise _Rejected("braces are only allowed as repeat bounds like {2} or {1,4}")


# ------------------------------------------------------------------------------------------
# Vetting: the first compile of a client's pattern, in a child process with limits

_CHILD = f"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({COMPILE_MEMORY_BYTES}, {COMPILE_MEMORY_BYTES}))
resource.setrlimit(resource.RLIMIT_CPU, ({COMPILE_CPU_SECONDS}, {COMPILE_CPU_SECONDS}))
import regex
problems = {{}}
for source in json.load(sys.stdin):
    try:
        regex.compile(source)
    except MemoryError:
        problems[source] = "compiling the pattern needs too much memory"
    except Exception as exc:
        problems[source] = "invalid regular expression: " + str(exc)
json.dump(problems, sys.stdout)
"""

_vetted: OrderedDict[str, None] = OrderedDict()
_vetting_slots: asyncio.Semaphore | None = None


def _remember(source: str) -> None:
    _vetted[source] = None
    _vetted.move_to_end(source)
    while len(_vetted) > _VETTED_CACHE_SIZE:
        _vetted.popitem(last=False)


async def vet_patterns(sources: Iterable[str]) -> dict[str, str]:
    """Compile the patterns not vetted before in a limited child process; return the problems.

    Each source must already pass ``check_pattern``. A child that runs out of time or memory
    fails every pattern it was given (the client learns which document to fix).
    """
    global _vetting_slots
    todo = [source for source in dict.fromkeys(sources) if source not in _vetted]
    if not todo:
        return {}
    if _vetting_slots is None:
        _vetting_slots = asyncio.Semaphore(_MAX_CONCURRENT_VETTING)
    async with _vetting_slots:
        problems = await _compile_in_child(todo)
    for source in todo:
        if source not in problems:
            _remember(source)
    return problems


async def _compile_in_child(sources: list[str]) -> dict[str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-c",
        _CHILD,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    payload = json.dumps(sources).encode()
    try:
        output, _ = await asyncio.wait_for(process.communicate(payload), COMPILE_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        return dict.fromkeys(sources, "compiling the pattern took too long")
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        return dict.fromkeys(sources, "compiling the pattern exceeded the time or memory limit")
    answer = json.loads(output)
    return {str(key): str(value) for key, value in answer.items()}


# ------------------------------------------------------------------------------------------
# The in-process compile of patterns that passed the checks

_compiled: OrderedDict[str, regex.Pattern[str] | None] = OrderedDict()


def compiled(source: str) -> regex.Pattern[str] | None:
    """The compiled pattern, or None when it fails the checks (a document stored before them).

    Cheap when ``warm`` ran for it; otherwise one bounded compile (a few ms at most).
    """
    found = _compiled.get(source, _MISSING)
    if found is not _MISSING:
        _compiled.move_to_end(source)
        return found  # type: ignore[no-any-return]
    problem = check_pattern(source)
    result: regex.Pattern[str] | None = None
    if problem is None:
        try:
            result = regex.compile(source)
        except regex.error as exc:
            problem = str(exc)
    if problem is not None:
        logger.warning("ignoring stored pattern %r: %s", source[:80], problem)
    _compiled[source] = result
    while len(_compiled) > _COMPILED_CACHE_SIZE:
        _compiled.popitem(last=False)
    return result


async def warm(sources: Iterable[str]) -> None:
    """Compile what is not cached yet, one pattern per loop turn (each bounded by the checks)."""
    for source in sources:
        if source not in _compiled:
            compiled(source)
            await asyncio.sleep(0)


_MISSING: Any = object()
