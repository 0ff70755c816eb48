"""sound_touch: pitch shift through Asterisk's PITCH_SHIFT(); what Asterisk cannot do is refused
at save (SPEC §6, issue 16 item 6)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ari_metaflows.errors import ValidationFailed
from ari_metaflows.metaflows.documents import validate_document
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.testing.eventually import eventually
from ari_metaflows.testing.scenario import SimDriver

from ..helpers.engine_service import (
    ACCOUNT,
    ADMIN,
    FAST,
    Service,
    connected_call,
    requests_to,
    sim_only,
    the_call,
)


def node(**data: Any) -> dict[str, Any]:
    return {"numbers": {"1": {"module": "sound_touch", "data": data}}}


async def pitch_of(api: TestClient[Any, Any], role: str) -> Any:
    async def legs() -> list[dict[str, Any]]:
        response = await api.get(f"/v2/accounts/{ACCOUNT}/channels", headers=ADMIN)
        found: list[dict[str, Any]] = (await response.json())["data"]
        return found

    # the callee's owner is looked up just after it answers: wait until it is listed
    listed = await eventually(legs, lambda found: role in {leg["role"] for leg in found})
    return next(leg["pitch_shift"] for leg in listed if leg["role"] == role)


async def flows_ok(service: Service, count: int) -> None:
    """Asterisk took each PITCH_SHIFT() write (a refused one fails the flow)."""
    await eventually(
        lambda: service.metrics.codes.get(("sound_touch", "ok"), 0),
        lambda ok: ok == count,
        what=f"{count} sound_touch flows ok",
    )


async def test_start_sets_pitch_shift_and_stop_resets(
    service: Service, api: TestClient[Any, Any]
) -> None:
    await service.document(
        Owner.account(ACCOUNT),
        numbers={
            "1": {"module": "sound_touch", "data": {"action": "start", "adjust_in_octaves": 1}},
            "2": {
                "module": "sound_touch",
                "data": {"action": "start", "adjust_in_semitones": -12, "sending_leg": True},
            },
            "3": {"module": "sound_touch", "data": {"action": "stop"}},
        },
    )
    alice, _bob = await connected_call(service)
    caller = the_call(service).legs["caller"].channel_id
    # PITCH_SHIFT() cannot be read back from a real Asterisk: the simulator shows the values.
    sim = service.driver.sim.core if isinstance(service.driver, SimDriver) else None

    async def pitch(direction: str, value: str) -> None:
        if sim is not None:
            variables = sim.channels[caller].variables
            await eventually(lambda: variables.get(f"PITCH_SHIFT({direction})"), value.__eq__)

    await alice.press("*1", FAST)
    await flows_ok(service, 1)
    await pitch("rx", "2.0000")
    assert await pitch_of(api, "caller") == {"rx": 2.0}
    assert await pitch_of(api, "callee") is None

    await alice.press("*2", FAST)  # an octave down, on what alice hears
    await flows_ok(service, 2)
    await pitch("tx", "0.5000")
    assert await pitch_of(api, "caller") == {"rx": 2.0, "tx": 0.5}

    await alice.press("*3", FAST)
    await flows_ok(service, 3)
    await pitch("both", "1.0000")
    assert await pitch_of(api, "caller") is None
    if sim is not None:
        sets = [q["variable"] for q in requests_to(service, "/variable")]
        assert sets[-3:] == ["PITCH_SHIFT(rx)", "PITCH_SHIFT(tx)", "PITCH_SHIFT(both)"]


async def test_pitch_combines_pitch_octaves_and_semitones(sim_service: Service) -> None:
    driver = sim_only(sim_service.driver)
    await sim_service.document(
        Owner.account(ACCOUNT),
        numbers={
            "1": {
                "module": "sound_touch",
                "data": {"action": "start", "pitch": 1.5, "adjust_in_semitones": 7},
            }
        },
    )
    alice, _bob = await connected_call(sim_service)
    channel = driver.sim.core.channels[the_call(sim_service).legs["caller"].channel_id]
    await alice.press("*1", FAST)
    value = await eventually(lambda: channel.variables.get("PITCH_SHIFT(rx)"), bool)
    assert float(str(value)) == pytest.approx(1.5 * 2 ** (7 / 12), abs=1e-4)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"rate": 1.5}, "rate"),
        ({"tempo": 2}, "tempo"),
        ({"hook_dtmf": True}, "hook_dtmf"),
        ({"pitch": 3.0, "adjust_in_octaves": 1}, "pitch"),  # x6: beyond Asterisk's 4
        ({"pitch": 0.5}, "pitch"),  # Kazoo's minimum 1.0
        ({"adjust_in_semitones": 15}, "adjust_in_semitones"),
        ({"action": "pause"}, "action"),
    ],
)
def test_what_asterisk_cannot_do_is_refused_at_save(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as failed:
        validate_document(node(**data))
    paths = list(failed.value.errors)
    assert any(path.endswith(field) for path in paths), paths


def test_kazoo_defaults_are_filled_and_stop_needs_no_factor_check() -> None:
    stored = validate_document(node(action="start"))["numbers"]["1"]["data"]
    assert stored["pitch"] == 1.0
    assert stored["rate"] == 1.0
    assert stored["hook_dtmf"] is False
    validate_document(node(action="stop", pitch=9.0))  # stop resets: the factor is not used
