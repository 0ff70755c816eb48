"""The scenario harness itself, on the simulator (default) or a real Asterisk (ARI_URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ari_metaflows.testing.eventually import eventually
from ari_metaflows.testing.scenario import Driver, Owner, driver_from_environment

from ..helpers.mini_dial_app import MiniDialApp


@pytest.fixture
async def driver() -> AsyncIterator[Driver]:
    async with (
        driver_from_environment() as running,
        MiniDialApp(running.ari_url, running.ari_username, running.ari_password, running.app),
    ):
        await running.wait_app_connected()
        yield running


async def test_a_call_connects_both_parties_and_carries_digits(driver: Driver) -> None:
    alice = driver.add_phone("alice", Owner(account=driver.default_account, user="u-alice"))
    bob = driver.add_phone("bob")
    await driver.call(alice, bob)
    await bob.answer()
    await alice.wait_hears("party", "bob")
    await bob.wait_hears("party", "alice")
    await alice.press("12")  # returns once the app's leg got both digits
    # bob hears them once the app's bridge has passed them on: a later event on a real Asterisk
    await eventually(bob.heard_dtmf, lambda heard: heard == "12", what="bob hearing 12")
    await alice.hangup()
    await bob.wait_idle()


async def test_a_busy_callee_ends_the_call(driver: Driver) -> None:
    alice = driver.add_phone("alice")
    bob = driver.add_phone("bob")
    await driver.call(alice, bob)
    await bob.reject()
    await alice.wait_idle()


async def test_an_unanswered_call_times_out(driver: Driver) -> None:
    alice = driver.add_phone("alice")
    bob = driver.add_phone("bob")
    await driver.call(alice, bob, ring_timeout=1)
    await alice.wait_idle(timeout=5)
    assert not await bob.in_call()
