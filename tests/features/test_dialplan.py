"""callflow: the other party goes back to the dialplan (SPEC §6; issue 6)."""

from __future__ import annotations

from typing import Any

from ari_metaflows.metaflows.store import Owner

from ..helpers.engine_service import (
    ACCOUNT,
    FAST,
    Service,
    connected_call,
    requests_to,
)


async def doc(service: Service, **numbers: Any) -> None:
    await service.document(
        Owner.account(ACCOUNT),
        numbers=numbers,
        patterns={
            "8(\\d+)": {"module": "callflow"},
            "7(\\d+)": {"module": "park"},
        },
    )


async def test_callflow_sends_the_other_party_to_the_captured_extension(service: Service) -> None:
    await doc(service)
    alice, bob = await connected_call(service)
    carol = service.driver.add_phone("1234")
    await alice.press("*81234", FAST)
    await alice.wait_idle()
    await carol.answer()
    await bob.wait_hears("party", "1234")
    for q in requests_to(service, "/continue"):
        assert q == {
            "context": service.driver.transfer_context,
            "extension": "1234",
            "priority": "1",
        }
