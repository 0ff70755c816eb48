"""Validation of metaflow documents: defaults, Kazoo-shaped errors, limits, order."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ari_metaflows.errors import ValidationFailed
from ari_metaflows.metaflows.documents import (
    MAX_CHILD_DEPTH,
    validate_document,
    validate_module_data,
    validate_node,
)
from ari_metaflows.metaflows.schema import dotted

SEED_REQUEST = json.loads(
    r'{"binding_digit":"*", "patterns":{"2(\\d+)":{"module":"transfer",'
    r' "data":{"takeback_dtmf":"*1"}}}}'
)
SEED_ANSWER = json.loads(
    r'{"binding_digit": "*", "patterns": {"2(\\d+)": {"data": {"captures": ["no_match"],'
    r' "takeback_dtmf": "*1", "transfer_type": "blind"}, "module": "transfer"}}}'
)


def errors_of(document: Any) -> dict[str, Any]:
    with pytest.raises(ValidationFailed) as info:
        validate_document(document)
    return info.value.errors


def test_seed_example_is_answered_with_transfer_defaults() -> None:
    assert validate_document(SEED_REQUEST) == SEED_ANSWER


def test_binding_digit_defaults_to_star_and_runtime_defaults_are_not_stored() -> None:
    result = validate_document({"numbers": {"9": {"module": "record_call"}}})
    assert result["binding_digit"] == "*"
    assert "digit_timeout" not in result
    assert "listen_on" not in result
    # Kazoo's record_call defaults; the format (wav) is a run-time default, not stored.
    assert result["numbers"]["9"]["data"] == {
        "action": "toggle",
        "record_on_answer": False,
        "record_on_bridge": False,
    }


def test_kazoo_intro_example_record_start() -> None:
    result = validate_document(
        {"numbers": {"9": {"module": "record_call", "data": {"action": "start"}}}}
    )
    assert result["numbers"]["9"] == {
        "module": "record_call",
        "data": {"action": "start", "record_on_answer": False, "record_on_bridge": False},
    }


def test_unknown_top_level_and_node_keys_are_kept() -> None:
    result = validate_document(
        {"x_custom": {"a": 1}, "numbers": {"1": {"module": "hangup", "note": "kept"}}}
    )
    assert result["x_custom"] == {"a": 1}
    assert result["numbers"]["1"]["note"] == "kept"
    assert result["numbers"]["1"]["data"] == {}


def test_pattern_order_is_preserved() -> None:
    keys = ["9(\\d)", "1", "^5$", "0+", "3.*"]
    document = {"patterns": {key: {"module": "hangup"} for key in keys}}
    assert list(validate_document(document)["patterns"]) == keys


def test_enum_error_has_kazoo_shape() -> None:
    assert errors_of({"binding_digit": "X"}) == {
        "binding_digit": {
            "enum": {
                "message": "Value not found in enumerated list of values",
                "value": "X",
                "target": ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "*", "#"],
            }
        }
    }


@pytest.mark.parametrize(
    ("document", "path", "keyword"),
    [
        ({"digit_timeout": "800"}, "digit_timeout", "type"),
        ({"digit_timeout": True}, "digit_timeout", "type"),
        ({"digit_timeout": 800.5}, "digit_timeout", "type"),
        ({"digit_timeout": -1}, "digit_timeout", "minimum"),
        ({"listen_on": "everyone"}, "listen_on", "enum"),
        ({"numbers": []}, "numbers", "type"),
        ({"numbers": {"1*": {"module": "hangup"}}}, "numbers.1*", "pattern"),
        ({"numbers": {"1" * 33: {"module": "hangup"}}}, "numbers." + "1" * 33, "maxLength"),
        ({"numbers": {"1": "hangup"}}, "numbers.1", "type"),
        ({"numbers": {"1": {}}}, "numbers.1.module", "required"),
        ({"numbers": {"1": {"module": ""}}}, "numbers.1.module", "minLength"),
        ({"numbers": {"1": {"module": "m" * 65}}}, "numbers.1.module", "maxLength"),
        ({"numbers": {"1": {"module": "hangup", "data": []}}}, "numbers.1.data", "type"),
        ({"numbers": {"1": {"module": "hangup", "children": 3}}}, "numbers.1.children", "type"),
        ({"patterns": {"2(\\d+": {"module": "hangup"}}}, "patterns.2(\\d+", "error"),
        ({"patterns": {"": {"module": "hangup"}}}, "patterns.", "minLength"),
        ({"patterns": {"1" * 257: {"module": "hangup"}}}, "patterns." + "1" * 257, "maxLength"),
        (
            {"numbers": {"9": {"module": "record_call", "data": {"format": "mp3"}}}},
            "numbers.9.data.format",
            "enum",
        ),
        (
            {"numbers": {"9": {"module": "record_call", "data": {"time_limit": 1.5}}}},
            "numbers.9.data.time_limit",
            "type",
        ),
        (
            {"numbers": {"9": {"module": "record_call", "data": {"method": "bogus"}}}},
            "numbers.9.data.method",
            "enum",
        ),
        (
            {"numbers": {"9": {"module": "hold", "data": {"moh_aleg": 5}}}},
            "numbers.9.data.moh_aleg",
            "type",
        ),
        (
            {"numbers": {"9": {"module": "say", "data": {"gender": 5}}}},
            "numbers.9.data.gender",
            "type",
        ),
        (
            {"numbers": {"9": {"module": "transfer", "data": {"leg": 5}}}},
            "numbers.9.data.leg",
            "type",
        ),
        (
            {"numbers": {"9": {"module": "callflow", "data": {"flow": "1001"}}}},
            "numbers.9.data.flow",
            "type",
        ),
        (
            {"numbers": {"9": {"module": "callflow", "data": {"flow": {"data": {}}}}}},
            "numbers.9.data.flow.module",
            "required",
        ),
        (
            {"numbers": {"9": {"module": "sound_touch", "data": {"rate": 1.5}}}},
            "numbers.9.data.rate",
            "enum",
        ),
        (
            {"numbers": {"9": {"module": "pivot", "data": {}}}},
            "numbers.9.data.voice_url",
            "required",
        ),
        (
            {"numbers": {"9": {"module": "pivot", "data": {"voice_url": "ftp://x"}}}},
            "numbers.9.data.voice_url",
            "pattern",
        ),
        (
            {
                "numbers": {
                    "9": {
                        "module": "pivot",
                        "data": {"voice_url": "http://x", "req_format": "twiml"},
                    }
                }
            },
            "numbers.9.data.req_format",
            "enum",
        ),
        (
            {"numbers": {"9": {"module": "tts", "data": {"terminators": ["x"]}}}},
            "numbers.9.data.terminators.0",
            "enum",
        ),
        (
            {"numbers": {"2": {"module": "transfer", "data": {"transfer_type": "warm"}}}},
            "numbers.2.data.transfer_type",
            "enum",
        ),
        (
            {"numbers": {"2": {"module": "transfer", "data": {"target": "1@evil"}}}},
            "numbers.2.data.target",
            "pattern",
        ),
        (
            {"numbers": {"2": {"module": "transfer", "data": {"captures": "x"}}}},
            "numbers.2.data.captures",
            "type",
        ),
        (
            {"numbers": {"2": {"module": "transfer", "data": {"captures": [1]}}}},
            "numbers.2.data.captures.0",
            "type",
        ),
        (
            {"numbers": {"3": {"module": "say", "data": {"text": "abc", "type": "number"}}}},
            "numbers.3.data.text",
            "pattern",
        ),
        (
            {"numbers": {"3": {"module": "say", "data": {"text": "1", "type": "letters"}}}},
            "numbers.3.data.type",
            "enum",
        ),
        (
            {"numbers": {"3": {"module": "audio_level", "data": {"level": 5}}}},
            "numbers.3.data.level",
            "maximum",
        ),
        (
            {"numbers": {"3": {"module": "hold", "data": {"unhold_key": "12"}}}},
            "numbers.3.data.unhold_key",
            "pattern",
        ),
        (
            {"numbers": {"3": {"module": "park", "data": {"slot": "A1"}}}},
            "numbers.3.data.slot",
            "pattern",
        ),
        (
            {"numbers": {"3": {"module": "callflow", "data": {"priority": 0}}}},
            "numbers.3.data.priority",
            "minimum",
        ),
    ],
)
def test_invalid_fields_are_reported_at_their_path(
    document: dict[str, Any], path: str, keyword: str
) -> None:
    errors = errors_of(document)
    assert keyword in errors.get(path, {}), errors
    assert errors[path][keyword]["message"]


def test_unknown_module_uses_kazoo_message() -> None:
    errors = errors_of({"patterns": {"2(\\d+)": {"module": "frobnicate"}}})
    assert errors == {
        "patterns.2(\\d+).module": {
            "error": {
                "message": "unable to find metaflow schema for module frobnicate",
                "value": "frobnicate",
            }
        }
    }


def test_relate_is_rejected_clearly() -> None:
    errors = errors_of({"numbers": {"1": {"module": "relate"}}})
    message = errors["numbers.1.module"]["error"]["message"]
    assert message == "module relate is not supported by this server"


@pytest.mark.parametrize(
    ("module", "data", "stored"),
    [
        ("play", {}, {"leg": "both"}),
        ("say", {}, {}),
        ("audio_level", {}, {}),
        ("hold_control", {}, {"action": "toggle"}),
        ("intercept", {}, {"auto_answer": False, "can_call_self": True, "unbridged_only": True}),
        (
            "move",
            {"owner_id": "u1"},
            {
                "owner_id": "u1",
                "auto_answer": False,
                "can_call_self": True,
                "dial_strategy": "simultaneous",
            },
        ),
        (
            "tts",
            {"text": "hi", "terminators": []},
            {
                "text": "hi",
                "terminators": [],
                "engine": "flite",
                "leg": "self",
                "voice": "female",
            },
        ),
        (
            "pivot",
            {"voice_url": "https://example.com/x"},
            {
                "voice_url": "https://example.com/x",
                "debug": False,
                "method": "get",
                "req_format": "kazoo",
            },
        ),
        (
            "sound_touch",
            {"pitch": 1.5},
            {
                "pitch": 1.5,
                "adjust_in_octaves": 0,
                "adjust_in_semitones": 0,
                "hook_dtmf": False,
                "rate": 1.0,
                "sending_leg": False,
                "tempo": 1.0,
            },
        ),
        ("callflow", {"flow": {"module": "x"}}, {"flow": {"module": "x", "data": {}}}),
    ],
)
def test_kazoo_modules_are_accepted_with_kazoo_defaults(
    module: str, data: dict[str, Any], stored: dict[str, Any]
) -> None:
    result = validate_document({"numbers": {"1": {"module": module, "data": data}}})
    assert result["numbers"]["1"]["data"] == stored


def test_dot_inside_a_key_is_escaped_in_the_path() -> None:
    errors = errors_of({"patterns": {"1.2": {"module": "nope"}}})
    assert list(errors) == ["patterns.1%2E2.module"]
    assert dotted(("patterns", "a.b", "module")) == "patterns.a%2Eb.module"


def test_every_problem_is_reported_at_once() -> None:
    errors = errors_of(
        {
            "binding_digit": 1,
            "listen_on": "x",
            "numbers": {"1": {"module": "nope"}},
            "patterns": {"(": {"module": "hangup"}},
        }
    )
    assert set(errors) == {"binding_digit", "listen_on", "numbers.1.module", "patterns.("}


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"module": "hangup"}
    for _ in range(depth - 1):
        node = {"module": "hangup", "children": {"_": node}}
    return node


def test_children_nest_up_to_the_limit() -> None:
    document = {"numbers": {"1": _nested(MAX_CHILD_DEPTH)}}
    assert validate_document(document)["numbers"]["1"]["module"] == "hangup"


def test_children_deeper_than_the_limit_are_rejected() -> None:
    errors = errors_of({"numbers": {"1": _nested(MAX_CHILD_DEPTH + 1)}})
    (path,) = errors
    assert path.endswith(".children")
    assert "at most 10 levels" in errors[path]["error"]["message"]


def test_children_get_module_defaults() -> None:
    node = {
        "module": "play",
        "data": {"id": "beep"},
        "children": {"_": {"module": "record_call", "data": {"action": "start"}}},
    }
    result = validate_node(node)
    assert result["data"] == {"id": "beep", "leg": "both"}
    assert result["children"]["_"]["data"] == {
        "action": "start",
        "record_on_answer": False,
        "record_on_bridge": False,
    }


def test_module_data_validation_for_the_channels_api() -> None:
    assert validate_module_data("callflow", {"extension": "100"}) == {"extension": "100"}
    with pytest.raises(ValidationFailed) as info:
        validate_module_data("nope", {})
    assert info.value.errors["action"]["error"]["message"].endswith("module nope")


def test_input_is_not_modified() -> None:
    document = {"numbers": {"9": {"module": "record_call"}}}
    snapshot = json.dumps(document)
    validate_document(document)
    assert json.dumps(document) == snapshot


def test_top_level_must_be_an_object() -> None:
    errors = errors_of(["not", "an", "object"])
    assert errors[""]["type"]["message"] == "Value did not match type(s): object"
