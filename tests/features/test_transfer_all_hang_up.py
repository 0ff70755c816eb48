"""Attended transfer: every party hanging up at once during the consultation ends the call.

Found on Asterisk 22 (the teardown of a transfer test): the transferor's hangup completed the
transfer, which then detached with the target's and the transferee's hangup events still in its
queue, so the call never learnt its parties had left and its bridge stayed in Asterisk.
"""

from __future__ import annotations

import logging

import pytest

from ari_metaflows.features.transfer import transfer_of
from ari_metaflows.metaflows.store import Owner

from ..helpers.engine_service import (
    ACCOUNT,
    FAST,
    Service,
    connected_call,
    sim_only,
    the_call,
    wait_until,
)

TARGET = "1234"


async def test_all_three_hanging_up_during_the_consultation_end_the_call(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    driver = sim_only(service.driver)
    core = driver.sim.core
    await service.document(
        Owner.account(ACCOUNT),
        numbers={
            "4": {"module": "transfer", "data": {"target": TARGET, "transfer_type": "attended"}}
        },
    )
    alice, bob = await connected_call(service)
    carol = driver.add_phone(TARGET)
    await alice.press("*4", FAST)
    await bob.wait_hears("moh")
    await carol.answer()
    await alice.wait_hears("party", TARGET)
    call = the_call(service)
    await wait_until(lambda: getattr(transfer_of(call), "state", None) == "talking")
    assert len(core.bridges) == 2  # the call's (bob on hold) and the consultation

    caplog.set_level(logging.INFO)
    await driver.hang_up_all()  # alice, bob and carol in one go, no event handled between

    await service.wait_no_calls()
    await core.wait_for(lambda: not core.bridges)
    assert not [c for c in core.channels.values() if not c.gone]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert any(f"call {call.id}: ended" in r.getMessage() for r in caplog.records)


async def test_all_three_hanging_up_while_the_target_rings_end_the_call(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    driver = sim_only(service.driver)
    core = driver.sim.core
    await service.document(
        Owner.account(ACCOUNT),
        numbers={
            "4": {"module": "transfer", "data": {"target": TARGET, "transfer_type": "attended"}}
        },
    )
    alice, bob = await connected_call(service)
    driver.add_phone(TARGET)
    await alice.press("*4", FAST)
    await bob.wait_hears("moh")
    await alice.wait_hears("ringing")
    call = the_call(service)
    await wait_until(lambda: getattr(transfer_of(call), "state", None) == "ringing")

    caplog.set_level(logging.INFO)
    await driver.hang_up_all()

    await service.wait_no_calls()
    await core.wait_for(lambda: not core.bridges)
    assert not [c for c in core.channels.values() if not c.gone]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def test_the_transferee_hanging_up_while_the_target_rings_ends_the_call(
    service: Service,
) -> None:
    driver = sim_only(service.driver)
    core = driver.sim.core
    await service.document(
        Owner.account(ACCOUNT),
        numbers={
            "4": {"module": "transfer", "data": {"target": TARGET, "transfer_type": "attended"}}
        },
    )
    alice, bob = await connected_call(service)
    carol = driver.add_phone(TARGET)
    await alice.press("*4", FAST)
    await alice.wait_hears("ringing")
    await bob.hangup()
    await carol.wait_idle()
    await alice.wait_idle()
    await service.wait_no_calls()
    await core.wait_for(lambda: not core.bridges)
