"""The call's mailbox: order, wake-up, cancellation, one consumer."""

from __future__ import annotations

import asyncio

import pytest

from ari_metaflows.calls.mailbox import Mailbox


async def test_items_come_out_in_order_and_wake_a_waiting_consumer() -> None:
    box: Mailbox[int] = Mailbox()
    waiting = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    box.put(1)
    box.put(2)
    assert await waiting == 1
    assert len(box) == 1
    assert box.get_nowait() == 2
    with pytest.raises(IndexError):
        box.get_nowait()


async def test_a_cancelled_wait_loses_nothing_and_the_mailbox_stays_usable() -> None:
    box: Mailbox[str] = Mailbox()
    waiting = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    box.put("event")  # after the cancelled wait: kept for the next consumer
    assert await asyncio.wait_for(box.get(), 1) == "event"


async def test_cancelled_after_the_wake_up_the_item_stays_queued() -> None:
    box: Mailbox[str] = Mailbox()
    waiting = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    box.put("event")
    waiting.cancel()  # woken and cancelled in the same loop turn
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert box.get_nowait() == "event"


async def test_one_consumer_at_a_time() -> None:
    box: Mailbox[int] = Mailbox()
    first = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await box.get()
    box.put(7)
    assert await first == 7
