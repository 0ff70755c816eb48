"""Effective metaflows of a leg, cached per account and invalidated on every write.

The call engine resolves a leg once at call start; after that, matching DTMF never touches the
database. Invalidation reaches every instance through PostgreSQL ``LISTEN``: a dedicated
connection listens on the store's channel and drops the account's cache when a write commits
anywhere. If that connection drops, notifications may have been missed, so the whole cache is
cleared once it is back; while it is down, cached documents keep serving calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..backoff import Backoff
from ..db.listener import listen_forever
from ..errors import DatastoreUnavailable
from . import regex_guard
from .documents import EffectiveMetaflows, effective_metaflows, pattern_sources
from .store import CHANGE_CHANNEL, MetaflowStore, Owner

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LegIdentity:
    """Who owns a leg: its account and, when known, its user and device."""

    account_id: str
    user_id: str | None = None
    device_id: str | None = None

    def owners(self) -> list[Owner]:
        """Lowest precedence first: account, device, user."""
        owners = [Owner.account(self.account_id)]
        if self.device_id:
            owners.append(Owner.device(self.account_id, self.device_id))
        if self.user_id:
            owners.append(Owner.user(self.account_id, self.user_id))
        return owners


_LOAD_BATCH = 1000  # owners per query


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a failure as seen: its waiters may all have been cancelled meanwhile."""
    if not future.cancelled():
        future.exception()


def _fail(futures: Iterable[asyncio.Future[Any]], error: Exception) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(error)


@dataclass
class _AccountCache:
    """Replaced wholesale on invalidation; a load stores its result only if still current."""

    documents: dict[Owner, dict[str, Any] | None] = field(default_factory=dict)
    effective: dict[LegIdentity, EffectiveMetaflows] = field(default_factory=dict)


LISTENER_RETRY = Backoff(initial=0.5, maximum=30.0)


class MetaflowResolver:
    def __init__(
        self,
        store: MetaflowStore,
        *,
        listen_url: str | None = None,
        backoff: Backoff = LISTENER_RETRY,
    ) -> None:
        self.store = store
        self._listen_url = listen_url
        self._backoff = backoff
        self._accounts: dict[str, _AccountCache] = {}
        self._invalidation_listeners: list[Callable[[str | None], None]] = []
        self._listener_task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        self._wanted: dict[Owner, asyncio.Future[dict[str, Any] | None]] = {}
        self._loader: asyncio.Task[None] | None = None
        self.loads = 0  # database round trips made for resolutions
        store.add_change_listener(self.invalidate)

    def add_invalidation_listener(self, callback: Callable[[str | None], None]) -> None:
        """Called with an account id (or None for "everything") when cached views go stale."""
        self._invalidation_listeners.append(callback)

    async def resolve(self, identity: LegIdentity) -> EffectiveMetaflows:
        """The merged metaflows of a leg; raises DatastoreUnavailable if not cached and DB down."""
        cache = self._accounts.get(identity.account_id)
        if cache is None:
            cache = self._accounts[identity.account_id] = _AccountCache()
        found = cache.effective.get(identity)
        if found is not None:
            return found
        owners = identity.owners()
        missing = [owner for owner in owners if owner not in cache.documents]
        documents = dict(cache.documents)
        if missing:
            documents.update(await self._load(missing))
        levels = [documents[owner] for owner in owners]
        await regex_guard.warm(pattern_sources(levels))  # compile off the hot path, in steps
        effective = effective_metaflows(levels)
        if self._accounts.get(identity.account_id) is cache:
            for owner in missing:
                cache.documents[owner] = documents[owner]
            cache.effective[identity] = effective
        return effective

    async def _load(self, owners: list[Owner]) -> dict[Owner, dict[str, Any] | None]:
        """Documents of ``owners``, fetched together with every other leg's that waits.

        A burst of new calls (thousands of legs of different users) would otherwise take one
        pooled connection each and time out on the pool; here one loader task at a time fetches
        everything wanted so far in a single query, and legs wanting the same owner share it.
        """
        loop = asyncio.get_running_loop()
        futures = []
        for owner in owners:
            future = self._wanted.get(owner)
            if future is None:
                future = self._wanted[owner] = loop.create_future()
                future.add_done_callback(_retrieve)
            futures.append(future)
        if self._loader is None or self._loader.done():
            self._loader = asyncio.create_task(self._load_wanted(), name="metaflow-loader")
        # shield: one waiter's cancellation must not cancel a load others share.
        together = asyncio.gather(*futures)
        together.add_done_callback(_retrieve)
        results = await asyncio.shield(together)
        return dict(zip(owners, results, strict=True))

    async def _load_wanted(self) -> None:
        while self._wanted:
            batch = dict(list(self._wanted.items())[:_LOAD_BATCH])
            for owner in batch:
                del self._wanted[owner]
            try:
                self.loads += 1
                found = await self.store.load(list(batch))
            except asyncio.CancelledError:
                _fail(batch.values(), DatastoreUnavailable("the service is stopping"))
                raise
            except Exception as exc:
                _fail(batch.values(), exc)
                continue
            for owner, future in batch.items():
                if not future.done():
                    future.set_result(found.get(owner))

    def invalidate(self, account_id: str | None) -> None:
        if account_id is None:
            self._accounts.clear()
        else:
            self._accounts.pop(account_id, None)
        for callback in self._invalidation_listeners:
            try:
                callback(account_id)
            except Exception:
                logger.exception("invalidation listener failed")

    # -- cross-instance invalidation -----------------------------------------------------------

    async def start(self) -> None:
        if self._listen_url is not None and self._listener_task is None:
            self._listener_task = asyncio.create_task(
                self._listen_forever(self._listen_url), name="metaflow-listener"
            )

    async def stop(self) -> None:
        if self._loader is not None:
            self._loader.cancel()
            await asyncio.gather(self._loader, return_exceptions=True)
        task, self._listener_task = self._listener_task, None
        if task is not None:
            task.cancel()
            # Collects the listener's CancelledError; our own cancellation still propagates.
            await asyncio.gather(task, return_exceptions=True)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self.invalidate(str(payload) or None)

    async def _listen_forever(self, url: str) -> None:
        await listen_forever(
            url,
            CHANGE_CHANNEL,
            self._on_notify,
            backoff=self._backoff,
            listening=self.listening,
            what="metaflow change listener",
            on_listening=self._listening_again,
        )

    def _listening_again(self) -> None:
        # Anything written while we were not listening is unknown: start afresh.
        self.invalidate(None)
        logger.info("listening for metaflow changes")
