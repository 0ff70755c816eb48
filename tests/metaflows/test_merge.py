"""Owner precedence: user over device over account, merged per key (SPEC §4.1)."""

from __future__ import annotations

from typing import Any

from ari_metaflows.metaflows.documents import effective_metaflows, validate_document


def doc(**fields: Any) -> dict[str, Any]:
    return validate_document(fields)


def node(module: str, **data: Any) -> dict[str, Any]:
    return {"module": module, "data": data}


def test_no_documents_gives_defaults_and_no_codes() -> None:
    effective = effective_metaflows([None, None, None])
    assert effective.binding_digit == "*"
    assert effective.digit_timeout_ms == 800
    assert effective.listen_on == "self"
    assert effective.is_empty


def test_account_only() -> None:
    account = doc(
        binding_digit="#", digit_timeout=1500, numbers={"9": node("record_call", action="start")}
    )
    effective = effective_metaflows([account, None, None])
    assert effective.binding_digit == "#"
    assert effective.digit_timeout_ms == 1500
    assert effective.numbers["9"].module == "record_call"
    assert effective.numbers["9"].data["action"] == "start"
    assert not effective.is_empty


def test_scalars_come_from_the_highest_level_that_sets_them() -> None:
    account = {"digit_timeout": 1000, "listen_on": "both"}
    device = {"digit_timeout": 2000}
    user = {"listen_on": "peer"}
    effective = effective_metaflows([account, device, user])
    assert effective.digit_timeout_ms == 2000
    assert effective.listen_on == "peer"


def test_user_over_device_over_account_for_the_same_number() -> None:
    account = doc(numbers={"1": node("hangup")})
    device = doc(numbers={"1": node("break")})
    user = doc(numbers={"1": node("resume")})
    assert effective_metaflows([account, device, user]).numbers["1"].module == "resume"
    assert effective_metaflows([account, device, None]).numbers["1"].module == "break"
    assert effective_metaflows([account, None, None]).numbers["1"].module == "hangup"


def test_numbers_and_patterns_are_unions_by_key() -> None:
    account = doc(numbers={"1": node("hangup")}, patterns={"^7(\\d)$": node("hangup")})
    device = doc(numbers={"2": node("break")})
    user = doc(numbers={"3": node("resume")}, patterns={"^8": node("resume")})
    effective = effective_metaflows([account, device, user])
    assert set(effective.numbers) == {"1", "2", "3"}
    assert [p.source for p in effective.patterns] == ["^7(\\d)$", "^8"]


def test_a_higher_level_replaces_the_whole_node_without_mixing_data() -> None:
    account = doc(
        numbers={"2": node("transfer", target="100", transfer_type="attended", moh="jazz")}
    )
    user = doc(numbers={"2": node("transfer", target="200")})
    data = effective_metaflows([account, None, user]).numbers["2"].data
    assert data["target"] == "200"
    assert data["transfer_type"] == "blind"  # the user's default, not the account's value
    assert "moh" not in data


def test_pattern_order_account_then_device_only_then_user_only() -> None:
    account = doc(patterns={"a1": node("hangup"), "shared": node("hangup"), "a2": node("hangup")})
    device = doc(patterns={"d1": node("break"), "shared": node("break")})
    user = doc(patterns={"u1": node("resume"), "a1": node("resume"), "d1": node("resume")})
    effective = effective_metaflows([account, device, user])
    assert [p.source for p in effective.patterns] == ["a1", "shared", "a2", "d1", "u1"]
    modules = {p.source: p.node.module for p in effective.patterns}
    assert modules == {
        "a1": "resume",
        "shared": "break",
        "a2": "hangup",
        "d1": "resume",
        "u1": "resume",
    }


def test_patterns_are_compiled_for_search_with_captures() -> None:
    effective = effective_metaflows([doc(patterns={"2(\\d+)": node("transfer")}), None, None])
    match = effective.patterns[0].compiled.search("21234")
    assert match is not None
    assert match.groups() == ("1234",)


def test_children_become_typed_nodes() -> None:
    tree = {
        "module": "play",
        "data": {"id": "beep"},
        "children": {"_": {"module": "record_call", "data": {"action": "start"}}},
    }
    effective = effective_metaflows([doc(numbers={"5": tree}), None, None])
    child = effective.numbers["5"].children["_"]
    assert child.module == "record_call"
    assert child.data["action"] == "start"
