"""The document store and the resolver against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest

from ari_metaflows.backoff import Backoff
from ari_metaflows.db.database import Database
from ari_metaflows.errors import DatastoreUnavailable, RevisionConflict
from ari_metaflows.metaflows.documents import validate_document
from ari_metaflows.metaflows.resolver import LegIdentity, MetaflowResolver
from ari_metaflows.metaflows.store import MetaflowStore, Owner, normalise_revision
from ari_metaflows.testing.eventually import eventually

from ..conftest import PROJECT_ROOT
from ..helpers.listen import drop_listen_connections

ACCOUNT = Owner.account("acc1")
USER = Owner.user("acc1", "alice")
DEVICE = Owner.device("acc1", "alice-desk")


def numbers(*pairs: tuple[str, str]) -> dict[str, Any]:
    return validate_document({"numbers": {key: {"module": module} for key, module in pairs}})


async def test_missing_document_reads_as_none(store: MetaflowStore) -> None:
    stored = await store.get(ACCOUNT)
    assert stored.document is None
    assert stored.revision is None


async def test_put_get_roundtrip_and_revisions_increase(store: MetaflowStore) -> None:
    first = await store.put(ACCOUNT, numbers(("1", "hangup")))
    second = await store.put(ACCOUNT, numbers(("2", "hangup")))
    assert first.revision is not None
    assert second.revision is not None
    assert first.revision.startswith("1-")
    assert second.revision.startswith("2-")
    stored = await store.get(ACCOUNT)
    assert stored.document == numbers(("2", "hangup"))
    assert stored.revision == second.revision


async def test_owners_are_separate(store: MetaflowStore) -> None:
    await store.put(ACCOUNT, numbers(("1", "hangup")))
    await store.put(USER, numbers(("2", "break")))
    assert (await store.get(DEVICE)).document is None
    assert (await store.get(Owner.user("acc2", "alice"))).document is None
    assert (await store.get(USER)).document == numbers(("2", "break"))


async def test_if_match_accepts_current_and_rejects_stale(store: MetaflowStore) -> None:
    first = await store.put(ACCOUNT, numbers(("1", "hangup")))
    second = await store.put(ACCOUNT, numbers(("2", "hangup")), if_match=first.revision)
    with pytest.raises(RevisionConflict):
        await store.put(ACCOUNT, numbers(("3", "hangup")), if_match=first.revision)
    with pytest.raises(RevisionConflict):
        await store.delete(ACCOUNT, if_match=first.revision)
    assert (await store.get(ACCOUNT)).revision == second.revision


async def test_if_match_on_a_missing_document_conflicts(store: MetaflowStore) -> None:
    with pytest.raises(RevisionConflict):
        await store.put(ACCOUNT, numbers(("1", "hangup")), if_match="1-abc")
    assert (await store.get(ACCOUNT)).document is None


async def test_delete_leaves_a_tombstone_revision(store: MetaflowStore) -> None:
    first = await store.put(ACCOUNT, numbers(("1", "hangup")))
    deleted = await store.delete(ACCOUNT, if_match=first.revision)
    assert deleted.revision is not None
    assert deleted.revision.startswith("2-")
    assert (await store.get(ACCOUNT)).document is None
    again = await store.put(ACCOUNT, numbers(("1", "hangup")))
    assert again.revision is not None
    assert again.revision.startswith("3-")


def test_if_match_may_be_a_quoted_entity_tag() -> None:
    assert normalise_revision('"2-abc"') == "2-abc"
    assert normalise_revision('W/"2-abc"') == "2-abc"
    assert normalise_revision(" 2-abc ") == "2-abc"


async def test_pattern_order_survives_storage_and_a_new_connection(
    store: MetaflowStore, database_url: str
) -> None:
    keys = ["9(\\d)", "^1", "0+", "5$", "3.*", "8"]
    await store.put(
        ACCOUNT, validate_document({"patterns": {k: {"module": "hangup"} for k in keys}})
    )
    fresh = Database(database_url)
    await fresh.open()
    try:
        stored = await MetaflowStore(fresh).get(ACCOUNT)
    finally:
        await fresh.close()
    assert stored.document is not None
    assert list(stored.document["patterns"]) == keys


async def test_load_fetches_several_owners_at_once(store: MetaflowStore) -> None:
    await store.put(ACCOUNT, numbers(("1", "hangup")))
    await store.put(USER, numbers(("2", "hangup")))
    await store.delete(DEVICE)
    loaded = await store.load([ACCOUNT, USER, DEVICE])
    assert loaded == {
        ACCOUNT: numbers(("1", "hangup")),
        USER: numbers(("2", "hangup")),
        DEVICE: None,
    }


async def test_database_down_is_datastore_unavailable() -> None:
    db = Database("postgresql://nobody@127.0.0.1:9/none")
    await db.open()
    try:
        with pytest.raises(DatastoreUnavailable):
            await MetaflowStore(db).get(ACCOUNT)
        assert await db.ping() is False
    finally:
        await db.close()


# -- resolver ----------------------------------------------------------------------------------


async def test_resolver_merges_by_precedence(store: MetaflowStore) -> None:
    await store.put(ACCOUNT, numbers(("1", "hangup"), ("2", "hangup")))
    await store.put(DEVICE, numbers(("2", "break"), ("3", "break")))
    await store.put(USER, numbers(("3", "resume")))
    resolver = MetaflowResolver(store)
    effective = await resolver.resolve(LegIdentity("acc1", "alice", "alice-desk"))
    assert {k: n.module for k, n in effective.numbers.items()} == {
        "1": "hangup",
        "2": "break",
        "3": "resume",
    }
    account_only = await resolver.resolve(LegIdentity("acc1"))
    assert set(account_only.numbers) == {"1", "2"}


async def test_resolver_serves_from_cache_while_the_database_is_down(
    store: MetaflowStore, db: Database
) -> None:
    await store.put(ACCOUNT, numbers(("9", "record_call")))
    resolver = MetaflowResolver(store)
    identity = LegIdentity("acc1", "alice")
    assert set((await resolver.resolve(identity)).numbers) == {"9"}
    await db.close()
    assert set((await resolver.resolve(identity)).numbers) == {"9"}
    with pytest.raises(DatastoreUnavailable):
        await resolver.resolve(LegIdentity("acc-not-cached"))


async def test_local_write_invalidates_the_cache(store: MetaflowStore) -> None:
    resolver = MetaflowResolver(store)
    seen: list[str | None] = []
    resolver.add_invalidation_listener(seen.append)
    identity = LegIdentity("acc1", "alice")
    assert (await resolver.resolve(identity)).is_empty
    await store.put(USER, numbers(("5", "hangup")))
    assert set((await resolver.resolve(identity)).numbers) == {"5"}
    assert seen == ["acc1"]


async def test_write_seen_by_a_second_process(store: MetaflowStore, database_url: str) -> None:
    """Another instance caches documents, and drops them when this one writes (LISTEN/NOTIFY)."""
    await store.put(ACCOUNT, numbers(("1", "hangup")))
    probe = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.helpers.resolver_probe",
        database_url,
        cwd=PROJECT_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert probe.stdin is not None
    assert probe.stdout is not None

    async def ask() -> dict[str, Any]:
        assert probe.stdin is not None
        assert probe.stdout is not None
        probe.stdin.write(b"resolve acc1 alice -\n")
        await probe.stdin.drain()
        answer: dict[str, Any] = json.loads(await probe.stdout.readline())
        return answer

    try:
        assert (await asyncio.wait_for(probe.stdout.readline(), 20)).strip() == b"ready"
        first = await ask()
        assert first["numbers"] == {"1": "hangup"}
        cached = await ask()
        assert cached["loads"] == first["loads"], "the second resolve must come from cache"

        await store.put(USER, numbers(("7", "break")))
        answer = await eventually(
            ask, lambda answer: answer["numbers"] != first["numbers"], interval=0.05
        )
        assert answer["numbers"] == {"1": "hangup", "7": "break"}
        assert answer["loads"] == first["loads"] + 1
    finally:
        probe.stdin.close()
        await asyncio.wait_for(probe.wait(), 20)
    assert probe.returncode == 0


async def test_listener_reconnects_and_clears_the_cache(
    store: MetaflowStore, database_url: str
) -> None:
    resolver = MetaflowResolver(
        store, listen_url=database_url, backoff=Backoff(initial=0.05, maximum=0.1)
    )
    seen: list[str | None] = []
    resolver.add_invalidation_listener(seen.append)
    await resolver.start()
    try:
        await asyncio.wait_for(resolver.listening.wait(), 10)
        assert seen == [None]
        await drop_listen_connections(database_url)
        await eventually(
            lambda: seen.count(None) >= 2 and resolver.listening.is_set(),
            interval=0.02,
            what="listening again with the cache cleared",
        )
        assert seen.count(None) >= 2, "the cache must be cleared after reconnecting"
        # Notifications flow again on the new connection. The write goes through another store
        # object (as another instance would), so only NOTIFY can tell this resolver about it.
        await MetaflowStore(store.db).put(ACCOUNT, numbers(("1", "hangup")))
        await eventually(lambda: "acc1" in seen, interval=0.02, what="the NOTIFY for acc1")
        assert seen.count("acc1") == 1
    finally:
        await resolver.stop()
