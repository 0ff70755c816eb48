"""A small JSON-schema subset validator that reports errors the way Kazoo's crossbar does.

Why not a general JSON-schema library: Kazoo clients parse the error *shape*
(``{"dotted.path": {"keyword": {"message": ..., "value": ..., "target": ...}}}``) and the
messages, and our documents need ordered objects and default filling. The subset here is what
the metaflow schemas use: ``type``, ``enum``, ``minLength``/``maxLength``, ``pattern``,
``minimum``/``maximum``, ``properties`` (with ``default``), ``required``, ``items``,
``minItems``/``maxItems``, ``patternProperties``, ``additionalProperties`` (boolean or a schema)
and ``$ref`` to a schema registered in ``REFS`` (Kazoo's ``callflows.action``, which the
``callflow`` module's ``flow`` refers to). As in JSON Schema draft 4 (Kazoo's), keywords beside a
``$ref`` are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

Schema = Mapping[str, Any]
Path = tuple[str, ...]

_MISSING: Any = object()

# Named schemas a ``{"$ref": name}`` may point to. Names are chosen so the OpenAPI document can
# use the same reference unchanged (``#/components/schemas/<Name>``).
REFS: dict[str, Schema] = {}


def dotted(path: Path) -> str:
    """Kazoo writes a field's path with dots; a dot inside a key is written ``%2E``."""
    return ".".join(segment.replace(".", "%2E") for segment in path)


def json_type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_matches(value: Any, expected: str) -> bool:
    actual = json_type_of(value)
    return actual == expected or (expected == "number" and actual == "integer")


class ErrorCollector:
    """Accumulates every problem of a document, so a client sees them all at once."""

    def __init__(self) -> None:
        self.errors: dict[str, dict[str, dict[str, Any]]] = {}

    def add(
        self,
        path: Path,
        keyword: str,
        message: str,
        *,
        value: Any = _MISSING,
        target: Any = _MISSING,
    ) -> None:
        entry: dict[str, Any] = {"message": message}
        if value is not _MISSING:
            entry["value"] = value
        if target is not _MISSING:
            entry["target"] = target
        self.errors.setdefault(dotted(path), {})[keyword] = entry

    def __bool__(self) -> bool:
        return bool(self.errors)

    def check(self, value: Any, schema: Schema, path: Path) -> Any:
        """Validate ``value``; return it with defaults filled (unchanged when invalid)."""
        ref = schema.get("$ref")
        if ref is not None:
            schema = REFS[ref]
        expected = schema.get("type")
        if expected is not None:
            types = [expected] if isinstance(expected, str) else list(expected)
            if not any(_type_matches(value, t) for t in types):
                names = ", ".join(types)
                self.add(
                    path,
                    "type",
                    f"Value did not match type(s): {names}",
                    value=value,
                    target=names,
                )
                return value
        if "enum" in schema and value not in schema["enum"]:
            self.add(
                path,
                "enum",
                "Value not found in enumerated list of values",
                value=value,
                target=list(schema["enum"]),
            )
            return value
        if isinstance(value, str):
            self._check_string(value, schema, path)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self._check_number(value, schema, path)
        elif isinstance(value, list):
            return self._check_array(value, schema, path)
        elif isinstance(value, dict):
            return self._check_object(value, schema, path)
        return value

    def _check_string(self, value: str, schema: Schema, path: Path) -> None:
        low = schema.get("minLength")
        high = schema.get("maxLength")
        if low is not None and len(value) < low:
            self.add(
                path,
                "minLength",
                f"String must be at least {low} characters",
                value=value,
                target=low,
            )
        elif high is not None and len(value) > high:
            self.add(
                path,
                "maxLength",
                f"String must not be more than {high} characters",
                value=value,
                target=high,
            )
        pattern = schema.get("pattern")
        if pattern is not None and not re.search(pattern, value):
            self.add(
                path,
                "pattern",
                f"Failed to match pattern '{pattern}'",
                value=value,
                target=pattern,
            )

    def _check_number(self, value: float, schema: Schema, path: Path) -> None:
        low = schema.get("minimum")
        high = schema.get("maximum")
        if low is not None and value < low:
            self.add(path, "minimum", f"Value must be at least {low}", value=value, target=low)
        elif high is not None and value > high:
            self.add(path, "maximum", f"Value must be at most {high}", value=value, target=high)

    def _check_array(self, value: list[Any], schema: Schema, path: Path) -> list[Any]:
        low = schema.get("minItems")
        high = schema.get("maxItems")
        if low is not None and len(value) < low:
            self.add(
                path,
                "minItems",
                f"The list must have at least {low} items",
                value=value,
                target=low,
            )
        elif high is not None and len(value) > high:
            self.add(
                path, "maxItems", f"The list is more than {high} items", value=value, target=high
            )
        items = schema.get("items")
        if items is None:
            return value
        return [self.check(item, items, (*path, str(i))) for i, item in enumerate(value)]

    def _check_object(self, value: dict[str, Any], schema: Schema, path: Path) -> dict[str, Any]:
        properties: Mapping[str, Schema] = schema.get("properties", {})
        required: Sequence[str] = schema.get("required", ())
        result: dict[str, Any] = {}
        patterns: Mapping[str, Schema] = schema.get("patternProperties", {})
        additional = schema.get("additionalProperties", True)
        for key, item in value.items():
            sub = properties.get(key)
            matching = [p for pattern, p in patterns.items() if re.search(pattern, key)]
            if sub is not None:
                result[key] = self.check(item, sub, (*path, key))
                for extra in matching:
                    self.check(item, extra, (*path, key))
            elif matching:
                result[key] = item
                for extra in matching:
                    result[key] = self.check(result[key], extra, (*path, key))
            elif additional is False:
                self.add(
                    (*path, key),
                    "additionalProperties",
                    "Strict checking of data is enabled; only include schema-defined properties",
                    value=item,
                )
            elif isinstance(additional, Mapping):
                result[key] = self.check(item, additional, (*path, key))
            else:
                result[key] = item
        # Defaults first, as jesse's use_defaults: a required field with a default is never missing.
        for key, sub in properties.items():
            if key not in result and key not in value and "default" in sub:
                result[key] = self.check(_copy_json(sub["default"]), sub, (*path, key))
        for key in required:
            if key not in value and key not in result:
                self.add((*path, key), "required", "Field is required but missing")
        return result


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value
