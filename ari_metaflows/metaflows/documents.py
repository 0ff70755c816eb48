"""Metaflow documents: validation with defaults filled in, and their typed form.

A document is validated on every write and stored exactly as validated; everything downstream
(resolution, collectors) may then trust its shape. Module data schemas belong to the features
(``ari_metaflows/features/<name>/``); the wiring hands them over with ``use_modules`` once the
feature registry is built, so this module never imports a feature.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import regex

from ..errors import ValidationFailed
from . import regex_guard  # fragments registers the shared $refs
from .schema import ErrorCollector, Path, Schema

BINDING_DIGITS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "*", "#"]
DEFAULT_BINDING_DIGIT = "*"
DEFAULT_DIGIT_TIMEOUT_MS = 800
DEFAULT_LISTEN_ON = "self"
MAX_DIGITS = regex_guard.MAX_DIGITS
MAX_PATTERN_LENGTH = regex_guard.MAX_PATTERN_LENGTH
MAX_PATTERNS = regex_guard.MAX_PATTERNS_PER_DOCUMENT
# Every node (numbers, patterns, children at any depth) costs validation and resolution time
# on the event loop; 500 keeps both within a few ms (issue 17).
MAX_NODES = 500
MAX_CHILD_DEPTH = 10

NUMBER_KEY_PATTERN = r"^[0-9]+$"

TOP_LEVEL_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "binding_digit": {"type": "string", "enum": BINDING_DIGITS, "default": "*"},
        # Kazoo's bounds (0, no maximum): 0 evaluates after every digit.
        "digit_timeout": {"type": "integer", "minimum": 0},
        "listen_on": {"type": "string", "enum": ["self", "peer", "both"]},
        # No "default" keyword: a filled-in false would override a lower level's true.
        "dtmf_passthrough": {
            "type": "boolean",
            "description": "default false: digits that may start a code are held back and "
            "the rest relayed (SPEC §5.6); true: every digit also reaches the other party",
        },
    },
}
# [+] Kazoo modules this server refuses: relate needs conferences, which this server has none of.
UNSUPPORTED_MODULES = frozenset({"relate"})


class ModuleData(Protocol):
    """What validation needs of a module: its data schema and its cross-field rules."""

    @property
    def schema(self) -> Schema: ...

    @property
    def extra_check(self) -> Callable[[Mapping[str, Any]], list[tuple[str, str, str]]] | None: ...


_modules: Mapping[str, ModuleData] | None = None


def use_modules(modules: Mapping[str, ModuleData]) -> None:
    """Validate module data with these specs (the feature registry's, set at wiring time)."""
    global _modules
    _modules = dict(modules)


@dataclass(frozen=True)
class ValidationSpec:
    """What validation needs of a module, picklable (the API's worker process validates big
    bodies with the specs the service was wired with)."""

    schema: Schema
    extra_check: Callable[[Mapping[str, Any]], list[tuple[str, str, str]]] | None = None


def validation_specs() -> dict[str, ValidationSpec]:
    """The wired modules' validation data, for ``use_modules`` in another process."""
    return {
        name: ValidationSpec(spec.schema, spec.extra_check) for name, spec in module_specs().items()
    }


def module_specs() -> Mapping[str, ModuleData]:
    if _modules is None:
        raise RuntimeError(
            "no metaflow modules known: wire the features first "
            "(documents.use_modules(ari_metaflows.features.build_registry().modules))"
        )
    return _modules


_MODULE_NAME: Schema = {"type": "string", "minLength": 1, "maxLength": 64}
_OBJECT: Schema = {"type": "object"}


class _DocumentErrors(ErrorCollector):
    """Also counts the nodes seen, to stop at ``MAX_NODES``."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes = 0


def validate_document(document: Any) -> dict[str, Any]:
    """Return the validated document with defaults filled; raise ``ValidationFailed``."""
    errors = _DocumentErrors()
    result = errors.check(document, TOP_LEVEL_SCHEMA, ())
    if isinstance(result, dict):
        if "numbers" in result:
            result["numbers"] = _check_node_map(errors, result["numbers"], ("numbers",), "number")
        if "patterns" in result:
            result["patterns"] = _check_node_map(
                errors, result["patterns"], ("patterns",), "pattern"
            )
    if errors:
        raise ValidationFailed(errors.errors)
    assert isinstance(result, dict)
    return result


def validate_node(node: Any, path: Path = ()) -> dict[str, Any]:
    """Validate one metaflow node (as the channels API receives it)."""
    errors = ErrorCollector()
    result = _check_node(errors, node, path, depth=1)
    if errors:
        raise ValidationFailed(errors.errors)
    assert isinstance(result, dict)
    return result


def validate_module_data(module: str, data: Any, path: Path = ("data",)) -> dict[str, Any]:
    """Validate one module's data (as ``POST …/channels/{id}`` receives it)."""
    errors = ErrorCollector()
    result = _check_module_data(errors, module, data, path, module_path=("action",))
    if errors:
        raise ValidationFailed(errors.errors)
    assert isinstance(result, dict)
    return result


def _check_node_map(errors: ErrorCollector, value: Any, path: Path, kind: str) -> Any:
    value = errors.check(value, _OBJECT, path)
    if not isinstance(value, dict):
        return value
    if kind == "pattern" and len(value) > MAX_PATTERNS:
        errors.add(
            path,
            "maxProperties",
            f"A document may hold at most {MAX_PATTERNS} patterns",
            target=MAX_PATTERNS,
        )
        return value
    checked: dict[str, Any] = {}
    for key, node in value.items():
        key_path = (*path, key)
        if kind == "number":
            if not regex.match(NUMBER_KEY_PATTERN, key):
                errors.add(
                    key_path,
                    "pattern",
                    f"Failed to match pattern '{NUMBER_KEY_PATTERN}'",
                    value=key,
                    target=NUMBER_KEY_PATTERN,
                )
            elif len(key) > MAX_DIGITS:
                errors.add(
                    key_path,
                    "maxLength",
                    f"String must not be more than {MAX_DIGITS} characters",
                    value=key,
                    target=MAX_DIGITS,
                )
        else:
            _check_pattern_key(errors, key, key_path)
        checked[key] = _check_node(errors, node, key_path, depth=1)
    return checked


def _check_pattern_key(errors: ErrorCollector, key: str, path: Path) -> None:
    if not key:
        errors.add(path, "minLength", "String must be at least 1 characters", value=key, target=1)
        return
    if len(key) > MAX_PATTERN_LENGTH:
        errors.add(
            path,
            "maxLength",
            f"String must not be more than {MAX_PATTERN_LENGTH} characters",
            value=key,
            target=MAX_PATTERN_LENGTH,
        )
        return
    problem = regex_guard.check_pattern(key)
    if problem is not None:
        errors.add(path, "error", problem, value=key)


def _check_node(errors: ErrorCollector, node: Any, path: Path, depth: int) -> Any:
    if isinstance(errors, _DocumentErrors):
        errors.nodes += 1
        if errors.nodes > MAX_NODES:
            if errors.nodes == MAX_NODES + 1:
                errors.add(
                    path,
                    "error",
                    f"a document may hold at most {MAX_NODES} metaflow nodes "
                    "(numbers, patterns and children together)",
                )
            return node
    node = errors.check(node, {"type": "object", "required": ["module"]}, path)
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = dict(node)
    module = node.get("module")
    if "module" in node:
        errors.check(module, _MODULE_NAME, (*path, "module"))
    data = node.get("data", {})
    if isinstance(module, str) and module:
        result["data"] = _check_module_data(
            errors, module, data, (*path, "data"), module_path=(*path, "module")
        )
    else:
        result["data"] = errors.check(data, _OBJECT, (*path, "data"))
    if "children" in node:
        children = errors.check(node["children"], _OBJECT, (*path, "children"))
        if isinstance(children, dict):
            if children and depth >= MAX_CHILD_DEPTH:
                errors.add(
                    (*path, "children"),
                    "error",
                    f"metaflow children may be nested at most {MAX_CHILD_DEPTH} levels deep",
                )
            else:
                result["children"] = {
                    key: _check_node(errors, child, (*path, "children", key), depth + 1)
                    for key, child in children.items()
                }
    return result


def _check_module_data(
    errors: ErrorCollector, module: str, data: Any, path: Path, *, module_path: Path
) -> Any:
    spec = module_specs().get(module)
    if spec is None:
        if module in UNSUPPORTED_MODULES:
            message = f"module {module} is not supported by this server"
        else:
            message = f"unable to find metaflow schema for module {module}"
        errors.add(module_path, "error", message, value=module)
        return data
    checked = errors.check(data, spec.schema, path)
    if isinstance(checked, dict) and spec.extra_check is not None:
        for key, keyword, message in spec.extra_check(checked):
            errors.add((*path, key), keyword, message, value=checked.get(key))
    return checked


# --------------------------------------------------------------------------------------------
# Typed form used by the call engine


@dataclass(frozen=True)
class Node:
    module: str
    data: Mapping[str, Any]
    children: Mapping[str, Node] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Node:
        children = raw.get("children") or {}
        return cls(
            module=raw["module"],
            data=raw.get("data") or {},
            children={key: cls.from_json(child) for key, child in children.items()},
        )


@dataclass(frozen=True)
class Pattern:
    source: str
    compiled: regex.Pattern[str]
    node: Node


async def vet_document_patterns(document: Mapping[str, Any]) -> None:
    """The first compile of a validated document's new patterns, in a limited child process
    (``regex_guard``); raise ``ValidationFailed`` naming each pattern that failed it."""
    patterns = document.get("patterns") or {}
    problems = await regex_guard.vet_patterns(patterns)
    if problems:
        errors = ErrorCollector()
        for source, problem in problems.items():
            errors.add(("patterns", source), "error", problem, value=source)
        raise ValidationFailed(errors.errors)


@dataclass(frozen=True)
class EffectiveMetaflows:
    """A leg's merged metaflows, ready for matching (regexes compiled once, here)."""

    binding_digit: str
    digit_timeout_ms: int
    listen_on: str
    numbers: Mapping[str, Node]
    patterns: tuple[Pattern, ...]
    # Every proper prefix of a number: "could a longer number still match" in O(1) per digit.
    number_prefixes: frozenset[str] = frozenset()
    dtmf_passthrough: bool = False  # SPEC §5.6: nothing held back, nothing relayed

    @property
    def is_empty(self) -> bool:
        return not self.numbers and not self.patterns


_SCALARS = ("binding_digit", "digit_timeout", "listen_on", "dtmf_passthrough")


def merge_documents(levels: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Merge documents given lowest precedence first (account, device, user).

    Scalars come from the highest level that sets them; ``numbers`` and ``patterns`` are unions
    by key in which a higher level's node replaces the lower one's whole node. A key keeps the
    position it first appeared at, so pattern order is the account's, then device-only keys,
    then user-only keys.
    """
    merged: dict[str, Any] = {}
    numbers: dict[str, Any] = {}
    patterns: dict[str, Any] = {}
    for document in levels:
        if not document:
            continue
        for key in _SCALARS:
            if key in document:
                merged[key] = document[key]
        numbers.update(document.get("numbers") or {})
        patterns.update(document.get("patterns") or {})
    merged["numbers"] = numbers
    merged["patterns"] = patterns
    return merged


def pattern_sources(levels: Sequence[Mapping[str, Any] | None]) -> list[str]:
    """The pattern keys of ``levels`` (what ``regex_guard.warm`` should compile first)."""
    return [key for level in levels if level for key in (level.get("patterns") or {})]


def effective_metaflows(levels: Sequence[Mapping[str, Any] | None]) -> EffectiveMetaflows:
    """Patterns come from ``regex_guard``'s cache; one failing its checks (stored before them)
    is left out rather than compiled unbounded."""
    merged = merge_documents(levels)
    patterns = []
    for key, node in merged["patterns"].items():
        compiled = regex_guard.compiled(key)
        if compiled is not None:
            patterns.append(Pattern(key, compiled, Node.from_json(node)))
    numbers = merged["numbers"]
    return EffectiveMetaflows(
        binding_digit=merged.get("binding_digit", DEFAULT_BINDING_DIGIT),
        digit_timeout_ms=merged.get("digit_timeout", DEFAULT_DIGIT_TIMEOUT_MS),
        listen_on=merged.get("listen_on", DEFAULT_LISTEN_ON),
        numbers={key: Node.from_json(node) for key, node in numbers.items()},
        patterns=tuple(patterns),
        number_prefixes=frozenset(key[:i] for key in numbers for i in range(1, len(key))),
        dtmf_passthrough=merged.get("dtmf_passthrough", False) is True,
    )
