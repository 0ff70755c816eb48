"""Kazoo's schemas are the contract (issue 16 item 10): documents generated from Kazoo's own
``metaflows*.json`` get Kazoo's verdict and Kazoo's defaults from ``validate_document``.

The oracle is what Kazoo runs: JSON Schema draft 4 with jesse's ``use_defaults`` (missing
properties take their default) and crossbar's ``kazoo-validation`` extension (a node's ``module``
must name a ``metaflows.<module>`` schema, and its ``data`` is validated, defaults filled, against
it) — here the ``jsonschema`` package extended the same way. Every document gets both verdicts;
where both accept, the stored documents (defaults filled) must be equal. The differences we keep
on purpose are listed in ``EXPECTED_DIFFERENCES`` with their reason (and in docs/decisions.md,
"Kazoo schemas: where we differ"); any other difference fails, and so does a listed one that no
longer happens.

Reads ``../shared/kazoo-schemas`` (``METAFLOWS_SHARED_DIR`` overrides ``../shared``, for git
worktrees); skipped when absent. The oracle does not know ``callflows.<module>`` schemas, so a
callflow ``flow`` node's module is not checked by either side.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator, ValidationError, validators
from referencing import Registry
from referencing.jsonschema import DRAFT4

from ari_metaflows.errors import ValidationFailed
from ari_metaflows.metaflows.documents import validate_document

from ..conftest import PROJECT_ROOT

SHARED = Path(os.environ.get("METAFLOWS_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
SCHEMAS = SHARED / "kazoo-schemas"

pytestmark = pytest.mark.skipif(
    not (SCHEMAS / "metaflows.json").is_file(), reason="../shared/kazoo-schemas is not present"
)

# Case id (or a prefix ending in "*") → why our verdict differs from Kazoo's on purpose.
EXPECTED_DIFFERENCES: dict[str, str] = {
    # -- the document (SPEC §4, §5)
    'patterns."2(\\\\d+"': "a pattern that is not a valid regular expression is refused at write "
    "time (Kazoo stored it and failed at call time)",
    "patterns.<257 characters>": "patterns are at most 256 characters (SPEC §4 limit)",
    "numbers.<33 digits>": "at most 32 digits are collected, so a longer number can never match",
    "children.<depth 11>": "children nest at most 10 levels (SPEC §4 limit)",
    # -- modules this server refuses or adds
    "relate*": 'relate is refused ("not supported by this server"): it relates conference '
    "participants, and this server has no conferences",
    "park": "park is ours (Kazoo has no park module); Kazoo refuses a module without a schema",
    # -- stricter checks on Kazoo fields
    'record_call.format="mp3"': "Asterisk cannot write mp3; refused at save with a clear message",
    'record_call.format="gsm"': "Asterisk's other formats (wav16, gsm, ulaw, …) are accepted",
    "sound_touch.rate=*": "Asterisk's PITCH_SHIFT() changes pitch only: rate other than 1.0 is "
    "refused at save",
    "sound_touch.tempo=*": "Asterisk's PITCH_SHIFT() changes pitch only: tempo other than 1.0 is "
    "refused at save",
    "sound_touch.hook_dtmf=true": "Asterisk has no DTMF control of PITCH_SHIFT(): refused at save",
    "sound_touch.pitch=7": "Asterisk's PITCH_SHIFT() shifts by at most 4 (pitch x 2^octaves x "
    "2^(semitones/12)): a larger factor is refused at save",
    'pivot.req_format="twiml"': "the pivot answer must be a metaflow node (JSON); twiml is refused",
    'tts.leg="abc"': "leg is self, peer or both everywhere (Kazoo: any string for tts)",
    'tts.leg=""': "leg is self, peer or both everywhere (Kazoo: any string for tts)",
    'hold.unhold_key="abc"': "unhold_key is one DTMF key (empty = the default 1): a key that can't "
    "be pressed would leave the party held",
    'transfer.target="1@other"': "target is dialled as Local/<target>@<context>: '@', '/' or ',' "
    "would reach another context or channel",
    'play.id="a,b"': "ARI's media parameter is a comma-separated list: one id may not name two",
    'say.text="1,2"': "say's text becomes an ARI media URI: no ',' (a list separator) or control "
    "characters",
    'say.text="abc"+type="number"': "a number, telephone number, extension or account number "
    "must be digits (Asterisk's number:/digits: media say nothing otherwise)",
    'say.type="digits"': "accepted before Kazoo's list was followed (Asterisk's digits: media); "
    "stored documents stay valid",
    'say.type="characters"': "accepted before Kazoo's list was followed (Asterisk's characters: "
    "media); stored documents stay valid",
    # -- fields we add to Kazoo's modules (Kazoo stores unknown fields unchecked)
    "transfer.takeback_dtmf=5": "our field (attended transfer's take-back code), checked",
    "audio_level.leg=5": "our field (which leg), checked",
    'callflow.context="a b"': "our field (the dialplan context to send the leg to), checked",
}

_SAMPLES: dict[str, Any] = {
    "string": "abc",
    "integer": 7,
    "number": 2.5,
    "boolean": True,
    "array": [],
    "object": {},
    "null": None,
}


@cache
def kazoo_schemas() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in SCHEMAS.glob("*.json")}


def _kazoo_validator() -> Any:
    # Without "$schema": jsonschema would switch a sub-schema back to the plain draft-4 class.
    schemas = {
        name: {k: v for k, v in schema.items() if k != "$schema"}
        for name, schema in kazoo_schemas().items()
    }
    plain_properties = Draft4Validator.VALIDATORS["properties"]

    def properties(
        validator: Any, props: dict[str, Any], instance: Any, schema: dict[str, Any]
    ) -> Iterator[ValidationError]:
        if validator.is_type(instance, "object"):
            for name, sub in props.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from plain_properties(validator, props, instance, schema)
        # crossbar's kazoo-validation of a metaflow node: data against metaflows.<module>
        if schema.get("_id") == "metaflow" and validator.is_type(instance, "object"):
            module, data = instance.get("module"), instance.get("data")
            if isinstance(module, str) and 1 <= len(module) <= 64 and isinstance(data, dict):
                module_schema = schemas.get(f"metaflows.{module}")
                if module_schema is None:
                    yield ValidationError(f"unable to find metaflow schema for module {module}")
                else:
                    yield from validator.descend(data, module_schema, path="data")

    registry: Registry[Any] = Registry().with_resources(
        (name, DRAFT4.create_resource(schema)) for name, schema in schemas.items()
    )
    kazoo = validators.extend(Draft4Validator, {"properties": properties})
    return kazoo(schemas["metaflows"], registry=registry)


def kazoo_verdict(document: Any) -> tuple[bool, Any]:
    instance = copy.deepcopy(document)
    errors = list(_kazoo_validator().iter_errors(instance))
    return not errors, instance


def our_verdict(document: Any) -> tuple[bool, Any]:
    try:
        return True, validate_document(copy.deepcopy(document))
    except ValidationFailed:
        return False, None


# -- generating documents from Kazoo's schemas ---------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def values_for(schema: dict[str, Any]) -> list[Any]:
    """Values to try for a property: each enum member, each bound and one past it, typical
    values, and one of each wrong type."""
    if "$ref" in schema:
        schema = kazoo_schemas()[schema["$ref"]]
    kind = schema.get("type")
    values: list[Any] = []
    if "enum" in schema:
        values += [*schema["enum"], "not-a-member"]
    elif kind == "string":
        values += ["abc", ""]
        if schema.get("pattern") == "^https?://":
            values += ["http://example.com/x", "https://example.com/x", "ftp://example.com/x"]
        for bound in ("minLength", "maxLength"):
            if bound in schema:
                n = schema[bound]
                values += ["x" * n, "x" * (n - 1 if bound == "minLength" else n + 1)]
    elif kind in ("integer", "number"):
        step = 1 if kind == "integer" else 0.5
        values += [0, 7, 10**9] if kind == "integer" else [0, 0.5, 2.5, 7]
        if "minimum" in schema:
            values += [schema["minimum"], schema["minimum"] - step]
        if "maximum" in schema:
            values += [schema["maximum"], schema["maximum"] + step]
        if kind == "integer":
            values += [1.5, 7.0]
    elif kind == "boolean":
        values += [True, False]
    elif kind == "array":
        items = schema.get("items", {})
        values += [[]]
        values += [[v] for v in values_for(items)] if items else [["abc"], [5]]
    elif kind == "object" and "module" in schema.get("properties", {}):  # callflows.action
        values += [
            {"module": "x", "data": {}},
            {"module": "x"},
            {"data": {}},
            {"module": "", "data": {}},
            {"module": "x" * 65, "data": {}},
            {"module": "x", "data": 5},
            {"module": "x", "data": {}, "children": {"_": {"module": "y", "data": {}}}},
            {"module": "x", "data": {}, "children": {"_": {"data": {}}}},
            {"module": "x", "data": {}, "children": 5},
        ]
    elif kind == "object":
        values += [{}, {"a": 1}]
    accepts = {kind, "number"} if kind == "integer" else {kind}
    values += [v for t, v in _SAMPLES.items() if t not in accepts and kind is not None]
    if kind == "number":
        values = [v for v in values if v != "abc" or "enum" in schema]
    unique: dict[str, Any] = {}
    for value in values:
        unique.setdefault(_json(value), value)
    return list(unique.values())


def _required_sample(schema: dict[str, Any]) -> Any:
    if schema.get("pattern") == "^https?://":
        return "http://example.com/voice"
    if "oneOf" in schema:
        return "p1"
    return _SAMPLES.get(schema.get("type", "string"), "abc")


def _wrap(node: dict[str, Any]) -> dict[str, Any]:
    return {"numbers": {"1": node}}


def module_cases(module: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(case id, document) for one Kazoo module schema."""
    schema = kazoo_schemas()[f"metaflows.{module}"]
    properties: dict[str, Any] = schema.get("properties", {})
    required: list[str] = schema.get("required", [])
    base = {key: _required_sample(properties[key]) for key in required}
    yield module, _wrap({"module": module})
    yield f"{module}.data={_json(base)}", _wrap({"module": module, "data": base})
    wrong_data: list[Any] = [[], "abc", 5]
    for wrong in wrong_data:
        yield f"{module}.data={_json(wrong)}", _wrap({"module": module, "data": wrong})
    for key in required:
        data = {k: v for k, v in base.items() if k != key}
        yield f"{module}.-{key}", _wrap({"module": module, "data": data})
    for key, sub in properties.items():
        candidates = values_for(sub)
        if "oneOf" in sub:
            candidates = ["p1", 5, 1.5, True, None, []]
        for value in candidates:
            yield (
                f"{module}.{key}={_json(value)}",
                _wrap({"module": module, "data": {**base, key: value}}),
            )


def top_level_cases() -> Iterator[tuple[str, dict[str, Any]]]:
    schema = kazoo_schemas()["metaflows"]
    yield "{}", {}
    yield "unknown top-level key", {"x_custom": {"a": 1}}
    for key, sub in schema["properties"].items():
        if key in ("numbers", "patterns"):
            continue
        for value in values_for(sub):
            yield f"{key}={_json(value)}", {key: value}
    hangup = {"module": "hangup"}
    for key in ("1", "12", "0123456789", "1a", "*1", "", "1" * 33):
        label = "<33 digits>" if len(key) == 33 else _json(key)
        yield f"numbers.{label}", {"numbers": {key: hangup}}
    for key in ("^1$", "2(\\d+)", "[0-9]{3}", "", "2(\\d+", "1" * 257):
        label = "<257 characters>" if len(key) == 257 else _json(key)
        yield f"patterns.{label}", {"patterns": {key: hangup}}
    for key in ("numbers", "patterns"):
        for value in ([], "abc", 5, None, {}):
            yield f"{key}={_json(value)}", {key: value}
    nodes: dict[str, Any] = {
        "node={}": {},
        'node.module=""': {"module": ""},
        "node.module=<65>": {"module": "m" * 65},
        "node.module=5": {"module": 5},
        'node.module="nosuch"': {"module": "nosuch"},
        "node=5": 5,
        "node.data=[]": {"module": "hangup", "data": []},
        "node.data=5": {"module": "hangup", "data": 5},
        "node.children=5": {"module": "hangup", "children": 5},
        "node.children={}": {"module": "hangup", "children": {}},
        "node.children.ok": {"module": "hangup", "children": {"_": {"module": "break"}}},
        "node.children.bad": {"module": "hangup", "children": {"_": {"data": {}}}},
        "node.children.=5": {"module": "hangup", "children": {"_": 5}},
        "node.extra key": {"module": "hangup", "note": "kept"},
    }
    for label, node in nodes.items():
        yield label, _wrap(node)
        yield f"patterns:{label}", {"patterns": {"^1$": node}}
    deep: dict[str, Any] = {"module": "hangup"}
    for _ in range(10):
        deep = {"module": "hangup", "children": {"_": deep}}
    yield "children.<depth 11>", _wrap(deep)


def extra_cases() -> Iterator[tuple[str, dict[str, Any]]]:
    """Our stricter checks, which the generated values do not reach."""
    yield "park", _wrap({"module": "park"})
    for case, module, data in (
        ('record_call.format="gsm"', "record_call", {"format": "gsm"}),
        ('transfer.target="1@other"', "transfer", {"target": "1@other"}),
        ("transfer.takeback_dtmf=5", "transfer", {"takeback_dtmf": 5}),
        ('play.id="a,b"', "play", {"id": "a,b"}),
        ('say.text="1,2"', "say", {"text": "1,2"}),
        ('say.text="abc"+type="number"', "say", {"text": "abc", "type": "number"}),
        ('say.text="1234"+type="number"', "say", {"text": "1234", "type": "number"}),
        ('say.type="digits"', "say", {"text": "12", "type": "digits"}),
        ('say.type="characters"', "say", {"text": "ab", "type": "characters"}),
        ("audio_level.leg=5", "audio_level", {"leg": 5}),
        ('callflow.context="a b"', "callflow", {"context": "a b"}),
    ):
        yield case, _wrap({"module": module, "data": data})


def kazoo_modules() -> list[str]:
    if not SCHEMAS.is_dir():
        return []
    return sorted(path.stem.split(".", 1)[1] for path in SCHEMAS.glob("metaflows.*.json"))


# -- the comparison -----------------------------------------------------------------------------


def _expected(case: str) -> str | None:
    for key, reason in EXPECTED_DIFFERENCES.items():
        if case == key or (key.endswith("*") and case.startswith(key[:-1])):
            return reason
    return None


def differences(cases: Iterator[tuple[str, Any]]) -> dict[str, str]:
    """Case id → how our answer differs from Kazoo's (verdict, or the stored document)."""
    found: dict[str, str] = {}
    for case, document in cases:
        kazoo_ok, kazoo_doc = kazoo_verdict(document)
        ours_ok, ours_doc = our_verdict(document)
        if kazoo_ok != ours_ok:
            found[case] = f"Kazoo {'accepts' if kazoo_ok else 'rejects'}, we do not"
        elif ours_ok and ours_doc != kazoo_doc:
            found[case] = f"stored {_json(ours_doc)}, Kazoo stores {_json(kazoo_doc)}"
    return found


def _check(found: dict[str, str]) -> None:
    unexpected = {case: how for case, how in found.items() if _expected(case) is None}
    assert not unexpected, json.dumps(unexpected, indent=1, ensure_ascii=False)


MODULES = kazoo_modules()


@pytest.mark.parametrize("module", MODULES)
def test_module_documents_get_kazoos_verdict_and_defaults(module: str) -> None:
    _check(differences(module_cases(module)))


def test_document_level_gets_kazoos_verdict_and_defaults() -> None:
    _check(differences(top_level_cases()))


def test_every_listed_difference_still_happens() -> None:
    """No stale entries: each listed difference is one we still make, for its stated reason."""
    found = differences(
        iter(
            [
                *top_level_cases(),
                *extra_cases(),
                *(case for module in MODULES for case in module_cases(module)),
            ]
        )
    )
    _check(found)
    for key in EXPECTED_DIFFERENCES:
        hits = [c for c in found if c == key or (key.endswith("*") and c.startswith(key[:-1]))]
        assert hits, f"listed difference {key!r} no longer differs from Kazoo"


def test_kazoo_defaults_are_stored() -> None:
    """The issue's examples: Kazoo's defaults filled in, its rejections rejected."""
    ok, stored = our_verdict(_wrap({"module": "record_call"}))
    assert ok
    assert stored["numbers"]["1"]["data"] == {
        "action": "toggle",
        "record_on_answer": False,
        "record_on_bridge": False,
    }
    for module, data in (
        ("record_call", {"method": "bogus"}),
        ("hold", {"moh_aleg": 5}),
        ("say", {"gender": 5}),
        ("transfer", {"leg": 5}),
        ("callflow", {"flow": "1001"}),
    ):
        assert our_verdict(_wrap({"module": module, "data": data})) == (False, None), module
        assert not kazoo_verdict(_wrap({"module": module, "data": data}))[0]
    for module in ("play", "say", "audio_level"):
        assert our_verdict(_wrap({"module": module}))[0], module


def test_the_oracle_is_kazoos_draft_4() -> None:
    """Guards the oracle itself: draft 4 integers, defaults, unknown modules, $ref."""
    assert not kazoo_verdict({"digit_timeout": 1.0})[0]
    assert kazoo_verdict({})[1] == {"binding_digit": "*"}
    assert not kazoo_verdict(_wrap({"module": "nosuch"}))[0]
    flow = {"module": "callflow", "data": {"flow": {"module": "x", "children": {"_": {}}}}}
    assert not kazoo_verdict(_wrap(flow))[0]
    ok, filled = kazoo_verdict(_wrap({"module": "transfer"}))
    assert ok
    assert filled["numbers"]["1"]["data"] == {"captures": ["no_match"], "transfer_type": "blind"}
