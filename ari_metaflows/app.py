"""Wiring: build the service's parts from settings, run them on one event loop, stop cleanly."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import signal
from dataclasses import dataclass

from aiohttp import web

from .api.context import ApiContext
from .api.server import create_app
from .ari.connection import AriConnection, ReconnectBackoff
from .audit import AuditTrail, EventStore
from .auth.tokens import Authenticator, TokenStore
from .calls.engine import CallEngine, EngineSettings
from .calls.parking import parse_slot_range
from .config import Settings
from .db.database import Database
from .db.migrate import apply_migrations
from .errors import DatastoreUnavailable
from .metaflows.resolver import MetaflowResolver
from .metaflows.store import MetaflowStore
from .metrics import Metrics
from .recordings import RecordingJournal, RecordingStore

logger = logging.getLogger(__name__)

# Young-generation threshold of the cyclic garbage collector (Python's default: 700).
GC_YOUNG_THRESHOLD = 10_000


def tune_garbage_collector() -> None:
    """Let DTMF bursts die young. The websocket reader parses a whole network read (hundreds of
    events, ~15 containers each) before the call tasks consume them; with Python's default
    threshold those in-flight events outlive two young collections, reach the oldest
    generation and trigger full collections that walk every tracked call: at 10,000 legs that
    was 37 % of the CPU and pauses of ~230 ms (docs/performance.md). Reference cycles still
    get collected, only after more allocations."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


@dataclass
class Service:
    settings: Settings
    db: Database
    store: MetaflowStore
    resolver: MetaflowResolver
    tokens: TokenStore
    api: ApiContext
    engine: CallEngine
    ari: AriConnection
    journal: RecordingJournal
    audit: AuditTrail
    metrics: Metrics

    async def close(self) -> None:
        await self.engine.close()
        await self.journal.flush(timeout=2.0)
        await self.journal.close()
        await self.audit.flush(timeout=2.0)
        await self.audit.close()
        await self.resolver.stop()
        await self.db.close()


def call_side(
    *,
    app: str,
    ari_url: str,
    username: str,
    password: str,
    resolver: MetaflowResolver,
    default_account: str | None,
    transfer_context: str,
    recordings: RecordingJournal | None = None,
    backoff: ReconnectBackoff | None = None,
    park_slots: str = "701-720",
    park_timeout_context: str = "metaflows-park-timeout",
    metrics: Metrics | None = None,
    audit: AuditTrail | None = None,
) -> tuple[CallEngine, AriConnection]:
    """The call engine and the ARI connection that feeds it (their gauges go to ``metrics``)."""
    metrics = metrics or Metrics()
    engine = CallEngine(
        EngineSettings(
            app=app,
            default_account=default_account,
            transfer_context=transfer_context,
            park_slots=parse_slot_range(park_slots),
            park_timeout_context=park_timeout_context,
        ),
        resolver,
        recordings,
        metrics=metrics,
        audit=audit,
    )
    ari = AriConnection(
        url=ari_url,
        username=username,
        password=password,
        app=app,
        route=engine.route,
        on_connected=engine.on_connected,
        on_disconnected=engine.on_disconnected,
        backoff=backoff,
    )
    metrics.gauge("metaflows_active_calls", "calls being tracked", lambda: len(engine.calls))
    metrics.gauge("metaflows_active_legs", "live legs of tracked calls", engine.active_legs)
    metrics.gauge("metaflows_ari_reconnects", "ARI reconnection attempts", lambda: ari.reconnects)
    metrics.gauge(
        "metaflows_ari_connected", "1 while the ARI websocket is up", ari.connected.is_set
    )
    return engine, ari


async def migrate(db: Database) -> list[str]:
    async with db.connection() as conn:
        return await apply_migrations(conn)


async def migrate_when_reachable(db: Database, *, max_delay: float = 30.0) -> None:
    """Apply migrations, waiting (with capped backoff) while the database is unreachable."""
    delay = 0.5
    while True:
        try:
            await migrate(db)
            return
        except DatastoreUnavailable:
            logger.warning("database not reachable; retrying in %.1f s", delay)
        await asyncio.sleep(delay * random.uniform(0.8, 1.2))
        delay = min(delay * 2, max_delay)


async def open_service(settings: Settings, database_url: str) -> Service:
    db = Database(database_url)
    await db.open()
    try:
        await migrate_when_reachable(db)
        store = MetaflowStore(db)
        resolver = MetaflowResolver(store, listen_url=database_url)
        await resolver.start()
        tokens = TokenStore(db)
        recordings = RecordingStore(db)
        journal = RecordingJournal(recordings, settings.data_dir / "recordings-journal.jsonl")
        await journal.start()
        metrics = Metrics()
        events = EventStore(db)
        audit = AuditTrail(events, settings.data_dir / "metaflow-events.pending.jsonl")
        await audit.start()
        metrics.gauge("metaflows_audit_pending", "audit rows not yet stored", lambda: audit.pending)
        metrics.gauge(
            "metaflows_audit_dropped", "audit rows dropped (buffer full)", lambda: audit.dropped
        )
        metrics.gauge(
            "metaflows_recordings_pending", "recording rows not yet stored", lambda: journal.pending
        )
        engine, ari = call_side(
            app=settings.ari_app,
            ari_url=settings.ari_url,
            username=settings.ari_username,
            password=settings.ari_password,
            resolver=resolver,
            default_account=settings.default_account_id,
            transfer_context=settings.transfer_context,
            recordings=journal,
            park_slots=settings.park_slots,
            park_timeout_context=settings.park_timeout_context,
            metrics=metrics,
            audit=audit,
        )

        async def ari_ready() -> bool:
            return ari.connected.is_set()

        api = ApiContext(
            store=store,
            authenticator=Authenticator(settings.admin_token, tokens),
            readiness={"database": db.ping, "asterisk": ari_ready},
            engine=engine,
            recordings=recordings,
            journal=journal,
            events=events,
            metrics=metrics,
            cors_origin=settings.cors_origin,
        )
    except BaseException:
        await db.close()
        raise
    return Service(settings, db, store, resolver, tokens, api, engine, ari, journal, audit, metrics)


async def serve(
    settings: Settings, database_url: str, *, stop: asyncio.Event | None = None
) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set)."""
    stop = stop or asyncio.Event()
    tune_garbage_collector()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    logger.info("database: %s", settings.database_url_for_logs)
    if settings.admin_token is None:
        logger.warning("METAFLOWS_ADMIN_TOKEN is unset: only account tokens can use the API")
    service = await open_service(settings, database_url)
    runner = web.AppRunner(create_app(service.api), access_log=None)
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.api_listen.host, settings.api_listen.port)
        await site.start()
        logger.info("REST API listening on http://%s/v2", settings.api_listen)
        ari_task = asyncio.create_task(service.ari.run_forever(), name="ari")
        await stop.wait()
        logger.info("shutting down; calls in progress continue in Asterisk")
        ari_task.cancel()
        await asyncio.gather(ari_task, return_exceptions=True)
    finally:
        await runner.cleanup()
        await service.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
