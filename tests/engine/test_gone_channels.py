"""A party that hangs up while the service acts on it is "gone", never an error (issue: all
parties hanging up at once during an attended transfer left the call and its bridge behind)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ari_metaflows.ari.gateway import AriError, AriGateway, AriTimeouts, Gone
from ari_metaflows.calls.mailbox import Mailbox
from ari_metaflows.sim import SimulatedAsteriskServer


@pytest.fixture
async def gateway() -> AsyncIterator[AriGateway]:
    async with SimulatedAsteriskServer() as sim:
        gateway = await AriGateway.connect(
            sim.url, sim.username, sim.password, "metaflows", AriTimeouts()
        )
        try:
            yield gateway
        finally:
            await gateway.close()


async def test_a_hung_up_channel_added_to_a_bridge_is_gone(gateway: AriGateway) -> None:
    """Asterisk answers 400 "Channel not found" here (bridges.json), not 404."""
    await gateway.create_bridge("mixing", "b-1")
    with pytest.raises(Gone) as raised:
        await gateway.add_to_bridge("b-1", ["no-such-channel"])
    assert raised.value.status == 400
    with pytest.raises(Gone):
        await gateway.remove_from_bridge("b-1", "no-such-channel")
    await gateway.destroy_bridge("b-1")


async def test_other_refusals_stay_errors(gateway: AriGateway) -> None:
    with pytest.raises(AriError) as raised:
        await gateway.create_bridge("no-such-type", "b-2")
    assert not isinstance(raised.value, Gone)


def test_items_put_back_come_out_first_in_their_order() -> None:
    mailbox: Mailbox[str] = Mailbox()
    mailbox.put("later")
    mailbox.put_back(["first", "second"])
    mailbox.put_back([])
    assert [mailbox.get_nowait() for _ in range(len(mailbox))] == ["first", "second", "later"]
