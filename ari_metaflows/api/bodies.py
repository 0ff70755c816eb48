"""Request bodies: strict JSON (bounded in depth and size, valid Unicode, numbers a document can
hold) and the ``{"data": {...}}`` envelope. Pure functions: the API uses them inline and the
offload worker process uses them for big bodies."""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidRequest

# Bodies are bounded before anything trusts them (issue 17): nesting deeper than this,
# integers beyond 64 bits, non-finite numbers and strings that are not valid Unicode are 400s.
MAX_JSON_DEPTH = 64
# Values (scalars and containers) in one body: what is stored is decoded and encoded again on
# every read, on the event loop; 10,000 keeps that to a few ms. Metaflow documents are tiny.
MAX_JSON_VALUES = 10_000
_INT64 = 2**63


def _parse_int(text: str) -> int:
    if len(text) > 20:
        raise ValueError("an integer is out of range")
    value = int(text)
    if not -_INT64 <= value < _INT64:
        raise ValueError("an integer is out of range")
    return value


def _parse_float(text: str) -> float:
    if len(text) > 64:
        raise ValueError("a number is written with too many characters")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("a number is out of range")
    return value


def _parse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(raw: bytes) -> Any:
    """Strict JSON: raise ``InvalidRequest`` for anything a client must not be able to store."""
    try:
        value = json.loads(
            raw,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except RecursionError:
        raise InvalidRequest(
            f"the request body is nested more than {MAX_JSON_DEPTH} levels deep"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    except ValueError as exc:
        raise InvalidRequest(f"the request body is not acceptable JSON: {exc}") from None
    _check_tree(value)
    return value


def _check_tree(value: Any) -> None:
    """Depth and Unicode of every key and string, without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > MAX_JSON_VALUES:
            raise InvalidRequest(f"the request body holds more than {MAX_JSON_VALUES} values")
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise InvalidRequest(
                    f"the request body is nested more than {MAX_JSON_DEPTH} levels deep"
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(
            "the request body holds a string that is not valid Unicode (a lone surrogate)"
        ) from None


def data_of(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise InvalidRequest('the request body must be a JSON object {"data": {...}}')
    data: dict[str, Any] = body["data"]
    return data
