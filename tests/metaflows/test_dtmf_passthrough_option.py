"""The ``dtmf_passthrough`` document option (SPEC §5.6, issue 15): validated, merged per key,
in the OpenAPI document."""

from __future__ import annotations

import pytest

from ari_metaflows.api.openapi import openapi_document
from ari_metaflows.errors import ValidationFailed
from ari_metaflows.metaflows.documents import effective_metaflows, validate_document

CODE = {"numbers": {"9": {"module": "hangup"}}}


def test_a_boolean_is_kept_and_nothing_is_filled_in() -> None:
    assert validate_document({"dtmf_passthrough": True})["dtmf_passthrough"] is True
    assert "dtmf_passthrough" not in validate_document({})


@pytest.mark.parametrize("bad", ["true", 1, None, [], {}])
def test_anything_else_is_refused(bad: object) -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_document({"dtmf_passthrough": bad})
    assert "dtmf_passthrough" in info.value.errors


def test_the_highest_level_that_sets_it_wins_and_the_default_is_false() -> None:
    account = validate_document({**CODE, "dtmf_passthrough": True})
    device = validate_document({"binding_digit": "#"})  # does not set it
    user_off = validate_document({"dtmf_passthrough": False})
    assert effective_metaflows([account, device, None]).dtmf_passthrough is True
    assert effective_metaflows([account, device, user_off]).dtmf_passthrough is False
    assert effective_metaflows([validate_document(CODE)]).dtmf_passthrough is False


def test_the_openapi_document_describes_it() -> None:
    schema = openapi_document()["components"]["schemas"]["MetaflowDocument"]["properties"]
    assert schema["dtmf_passthrough"]["type"] == "boolean"
    assert "default false" in schema["dtmf_passthrough"]["description"]
