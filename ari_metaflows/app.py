"""Wiring: build the service's parts from settings, run them on one event loop, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web

from .api.context import ApiContext
from .api.server import create_app
from .ari.connection import RECONNECT, AriConnection
from .ari.stored import StoredFiles
from .audit import AuditTrail, EventStore
from .audit.trail import TrailLimits
from .auth.tokens import Authenticator, TokenStore
from .backoff import Backoff
from .calls.engine import CallEngine, EngineSettings
from .cluster.directory import CallDirectory, ClusterDirectory
from .cluster.lease import LEASE_RETRY, LeasedSession, PgLeaseStore
from .cluster.live import LiveLegs
from .cluster.parking import ParkedCalls, PgSharedSlots
from .cluster.routing import ActionRouter
from .config import DEFAULT_ASTERISK, ListenAddress, Settings
from .db.database import Database
from .db.migrate import apply_migrations
from .devices import DeviceDirectory, DeviceStore
from .errors import DatastoreUnavailable
from .features import build_registry
from .features.park import ParkFeature, ParkingLots
from .features.pivot import PivotFeature
from .features.tts.errors import TtsError
from .features.tts.media import SpeechMedia
from .lifecycle import Lifecycle, StartupError
from .metaflows.documents import use_modules
from .metaflows.resolver import LISTENER_RETRY, MetaflowResolver
from .metaflows.store import MetaflowStore
from .metrics import Metrics
from .recordings import RecordingJournal, RecordingStore
from .writebehind import WRITER_RETRY

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


DATABASE_WAIT = Backoff(initial=0.5, maximum=30.0)


@dataclass(frozen=True)
class Retries:
    """The retry policy of each part that tries again later (one ``Backoff`` shape for all)."""

    ari: Backoff = RECONNECT  # reconnecting to ARI
    database: Backoff = DATABASE_WAIT  # waiting for the database to migrate it at start
    listener: Backoff = LISTENER_RETRY  # the metaflow change listener
    writers: Backoff = WRITER_RETRY  # the audit trail and the recordings journal
    lease: Backoff = LEASE_RETRY  # a standby trying to take an Asterisk's lease (cluster)


@dataclass
class Service:
    """The running service's parts. Everything that started is in ``lifecycle``: ``close()``
    (or leaving ``async with``) undoes it in reverse, reporting every failure
    (``lifecycle.TeardownError``)."""

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
    lifecycle: Lifecycle
    # Every Asterisk server this instance may serve: name → (engine, ARI connection); the
    # first one is also ``engine`` / ``ari``.
    sides: dict[str, tuple[CallEngine, AriConnection]] = field(default_factory=dict)
    # In a cluster: name → the lease that gates its ARI connection.
    sessions: dict[str, LeasedSession] = field(default_factory=dict)
    speech: SpeechMedia | None = None

    def start_ari(self) -> asyncio.Task[None]:
        """Connect to ARI (and keep reconnecting) until the service closes: to every Asterisk
        server configured, each only while holding its lease in a cluster. Answers the task
        of the first server."""
        first: asyncio.Task[None] | None = None
        sides = self.sides or {self.engine.asterisk: (self.engine, self.ari)}
        for name, (_, ari) in sides.items():
            session = self.sessions.get(name)
            runner = session.run_forever() if session is not None else ari.run_forever()
            task = asyncio.create_task(runner, name=f"ari-{name}")
            first = first or task

            async def cancel(task: asyncio.Task[None] = task) -> None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

            self.lifecycle.push(
                f"ARI connection ({name})" if len(sides) > 1 else "ARI connection", cancel
            )
        assert first is not None
        return first

    async def start_api(self, listen: ListenAddress) -> str:
        """Serve the REST API on ``listen`` (port 0: any free port); answers its base URL.
        A port that cannot be bound is a ``StartupError`` with a one-line reason."""
        runner = web.AppRunner(create_app(self.api), access_log=None)
        await runner.setup()
        self.lifecycle.push("REST API", runner.cleanup)
        try:
            await web.TCPSite(runner, listen.host, listen.port).start()
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise StartupError(
                f"cannot listen on {listen} for the REST API: {reason.lower()}"
            ) from exc
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}"
        if self.speech is not None and self.settings.media_base_url is None:
            # Asterisk fetches speech from this listener; port 0 is known only now.
            base = Settings(api_listen=ListenAddress(str(host), int(port))).media_url_base
            self.speech.signer.base_url = base
        return url

    def start_speech_check(self) -> asyncio.Task[bool]:
        """Load the speech engine once, in the background (``check_speech``)."""
        assert self.speech is not None
        task = asyncio.create_task(check_speech(self.speech), name="speech check")
        self.lifecycle.push("speech check", lambda: _cancel(task))
        return task

    async def close(self) -> None:
        await self.lifecycle.aclose()

    async def __aenter__(self) -> Service:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.lifecycle.__aexit__(exc_type, exc, tb)


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
    backoff: Backoff = RECONNECT,
    park_slots: str = "701-720",
    park_timeout_context: str = "metaflows-park-timeout",
    metrics: Metrics | None = None,
    audit: AuditTrail | None = None,
    devices: DeviceDirectory | None = None,
    asterisk: str = DEFAULT_ASTERISK,
    speech: SpeechMedia | None = None,
) -> tuple[CallEngine, AriConnection]:
    """The call engine and the ARI connection that feeds it (their gauges go to ``metrics``;
    the unlabelled ones describe the first server only). ``devices`` goes to the features that
    ring devices (intercept, move), never to the core."""
    metrics = metrics or Metrics()
    features = build_registry(
        recordings=recordings,
        park_slots=park_slots,
        park_timeout_context=park_timeout_context,
        devices=devices,
        speech=speech,
    )
    use_modules(features.modules)
    engine = CallEngine(
        EngineSettings(
            app=app,
            default_account=default_account,
            transfer_context=transfer_context,
            asterisk=asterisk,
        ),
        resolver,
        features=features,
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
    if "metaflows_active_calls" not in metrics.gauges:
        metrics.gauge("metaflows_active_calls", "calls being tracked", lambda: len(engine.calls))
        metrics.gauge("metaflows_active_legs", "live legs of tracked calls", engine.active_legs)
        metrics.gauge(
            "metaflows_ari_reconnects", "ARI reconnection attempts", lambda: ari.reconnects
        )
        metrics.gauge(
            "metaflows_ari_connected", "1 while the ARI websocket is up", ari.connected.is_set
        )
    metrics.labelled_gauge(
        "metaflows_asterisk_connected",
        "1 while this instance's ARI websocket to the Asterisk server is up",
        (("asterisk", asterisk),),
        ari.connected.is_set,
    )
    return engine, ari


# A migration, or the wait for another instance's, may take minutes (an index on a big table):
# the 5 s bound of the service's own statements would make start-up fail and retry for ever.
MIGRATION_TIMEOUT = 600.0


async def migrate(db: Database) -> list[str]:
    # Its advisory lock must not stay on a pooled connection.
    async with db.dedicated(command_timeout=MIGRATION_TIMEOUT) as conn:
        return await apply_migrations(conn)


async def migrate_when_reachable(db: Database, retry: Backoff = DATABASE_WAIT) -> None:
    """Apply migrations, waiting (``retry``) while the database is unreachable."""
    delays = retry.delays()
    while True:
        try:
            await migrate(db)
            return
        except DatastoreUnavailable:
            delay = delays.next_delay()
            logger.warning("database not reachable; retrying in %.1f s", delay)
        await asyncio.sleep(delay)


async def open_service(
    settings: Settings,
    database_url: str,
    *,
    db: Database | None = None,
    retries: Retries | None = None,
    audit_limits: TrailLimits | None = None,
) -> Service:
    """Start the service's parts (database pool unless ``db`` is given, migrations, metaflow
    listener, recordings journal, audit trail, call engine), each registered in the service's
    ``Lifecycle``. A step that fails undoes the ones before it, in reverse, and its error
    propagates. The REST API and the ARI connection are started by ``serve`` (or the caller)
    with ``start_api`` / ``start_ari``, in the same lifecycle."""
    retries = retries or Retries()
    lifecycle = Lifecycle("service")
    try:
        if db is None:
            db = Database(database_url)
            await db.open()
            lifecycle.push("database pool", db.close)
        await migrate_when_reachable(db, retries.database)
        store = MetaflowStore(db)
        resolver = MetaflowResolver(store, listen_url=database_url, backoff=retries.listener)
        await resolver.start()
        lifecycle.push("metaflow listener", resolver.stop)
        tokens = TokenStore(db)
        recordings = RecordingStore(db)
        journal = RecordingJournal(
            recordings, settings.data_dir / "recordings-journal.jsonl", retries.writers
        )
        await journal.start()
        lifecycle.push("recordings journal", journal.stop)
        metrics = Metrics()
        events = EventStore(db)
        audit = AuditTrail(
            events,
            settings.data_dir / "metaflow-events.pending.jsonl",
            audit_limits,
            retries.writers,
        )
        await audit.start()
        lifecycle.push("audit trail", audit.stop)
        metrics.gauge("metaflows_audit_pending", "audit rows not yet stored", lambda: audit.pending)
        metrics.gauge(
            "metaflows_audit_dropped", "audit rows dropped (buffer full)", lambda: audit.dropped
        )
        metrics.gauge(
            "metaflows_recordings_pending", "recording rows not yet stored", lambda: journal.pending
        )
        speech = SpeechMedia.from_settings(settings)
        lifecycle.push("speech engine", speech.cache.close)
        devices = DeviceStore(db)
        sides: dict[str, tuple[CallEngine, AriConnection]] = {}
        for server in settings.asterisk_servers:
            side = call_side(
                app=settings.ari_app,
                ari_url=server.url,
                username=server.username,
                password=server.password,
                resolver=resolver,
                default_account=settings.default_account_id,
                transfer_context=settings.transfer_context,
                recordings=journal,
                backoff=retries.ari,
                park_slots=settings.park_slots,
                park_timeout_context=settings.park_timeout_context,
                metrics=metrics,
                audit=audit,
                asterisk=server.name,
                devices=DeviceDirectory(devices),
                speech=speech,
            )
            sides[server.name] = side
            several = len(settings.asterisk_servers) > 1
            pivot = side[0].features.get("pivot")
            if isinstance(pivot, PivotFeature):  # undone after the engine: its CDR posts
                named = f" ({server.name})" if several else ""
                lifecycle.push(f"pivot CDR posts{named}", pivot.close)
            lifecycle.push(
                f"call engine ({server.name})" if several else "call engine", side[0].close
            )
        engine, ari = next(iter(sides.values()))
        engines = {name: side[0] for name, side in sides.items()}
        sessions: dict[str, LeasedSession] = {}
        directory: CallDirectory
        if settings.cluster:
            directory = await _cluster(
                settings, database_url, db, lifecycle, metrics, retries, sides, sessions
            )
        else:
            directory = CallDirectory(engines)

        stored = StoredFiles(settings.asterisk_servers, ari.timeouts)
        lifecycle.push("stored recordings client", stored.close)

        async def ari_ready() -> bool:
            if sessions:  # a standby is ready: another instance holds the Asterisk
                return True
            return all(side[1].connected.is_set() for side in sides.values())

        api = ApiContext(
            store=store,
            authenticator=Authenticator(settings.admin_token, tokens),
            readiness={"database": db.ping, "asterisk": ari_ready},
            engine=engine,
            recordings=recordings,
            journal=journal,
            stored=stored,
            events=events,
            metrics=metrics,
            devices=devices,
            cors_origin=settings.cors_origin,
            calls=directory,
            speech=speech,
        )
    except BaseException as exc:
        await lifecycle.undo_after(exc)
        raise
    return Service(
        settings,
        db,
        store,
        resolver,
        tokens,
        api,
        engine,
        ari,
        journal,
        audit,
        metrics,
        lifecycle,
        sides,
        sessions,
        speech,
    )


async def check_speech(speech: SpeechMedia) -> bool:
    """Load the speech engine once, in a child process, so that a missing engine is a clear
    line at start rather than a surprise at the first tts (which then fails with the reason)."""
    try:
        info = await speech.cache.check()
    except TtsError as exc:
        logger.error("tts: no speech on this server (tts flows will fail): %s", exc)
        return False
    logger.info("tts: %s %s ready", info.name, info.version)
    return True


async def _cancel(task: asyncio.Task[bool]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _held(session: LeasedSession) -> float:
    return float(session.held)


async def _cluster(
    settings: Settings,
    database_url: str,
    db: Database,
    lifecycle: Lifecycle,
    metrics: Metrics,
    retries: Retries,
    sides: dict[str, tuple[CallEngine, AriConnection]],
    sessions: dict[str, LeasedSession],
) -> ClusterDirectory:
    """Leases, live legs and routed actions (issue 18); fills ``sessions``."""
    instance = settings.instance_id
    live = LiveLegs(db, instance, retries.writers)
    await live.start()
    lifecycle.push("live legs", live.stop)
    leases = PgLeaseStore(db)
    directory = ClusterDirectory(
        {name: side[0] for name, side in sides.items()},
        instance=instance,
        live=live,
        leases=leases,
        held=lambda: {name for name, session in sessions.items() if session.held},
        parked=ParkedCalls(db),
    )
    router = ActionRouter(db, database_url, instance, directory.run_here)
    await router.start()
    lifecycle.push("action router", router.stop)
    directory.router = router
    for name, (engine, ari) in sides.items():
        engine.live_mark = live.mark
        slots = PgSharedSlots(db, name, instance)
        park = engine.features.get("park")
        lots: ParkingLots | None = None
        if isinstance(park, ParkFeature):
            lots = park.lots
            park.shared = slots
            # The resync offers the park feature the lone channels: parked calls to adopt.
            engine.adopt_lone = functools.partial(park.adopt, engine)
        lifecycle.push(f"parking slot releases ({name})", slots.close)

        async def acquired(name: str = name, slots: PgSharedSlots = slots) -> None:
            try:
                inherited = await slots.take_over()
                dropped = await live.take_over(name)
            except DatastoreUnavailable:
                return  # the rows stay until the next takeover; listings may show them
            if dropped or inherited:
                logger.info(
                    "asterisk %s: dropped %d live leg(s) of its previous holder; %d parking "
                    "slot(s) to adopt",
                    name,
                    dropped,
                    inherited,
                )

        async def dropped(
            name: str = name,
            engine: CallEngine = engine,
            lots: ParkingLots | None = lots,
        ) -> None:
            await engine.close()  # another instance adopts the calls
            if lots is not None:
                lots.clear()  # their parked calls are no longer ours
            await live.forget_asterisk(name)

        session = LeasedSession(
            name,
            instance,
            leases,
            ari.run_forever,
            on_acquired=acquired,
            on_dropped=dropped,
            retry=retries.lease,
        )
        sessions[name] = session
        metrics.labelled_gauge(
            "metaflows_asterisk_lease",
            "1 while this instance holds the Asterisk server's lease (its ARI connection)",
            (("asterisk", name), ("instance", instance)),
            functools.partial(_held, session),
        )
    metrics.gauge(
        "metaflows_routed_actions", "actions sent to another instance", lambda: router.routed
    )
    metrics.gauge(
        "metaflows_served_actions", "actions other instances sent here", lambda: router.served
    )
    return directory


async def serve(
    settings: Settings, database_url: str, *, stop: asyncio.Event | None = None
) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set). A stop that comes while the service is
    still starting (e.g. waiting for its database) undoes what started and returns. A start
    that fails raises ``StartupError`` (one line) after undoing what started; failures while
    stopping are raised together as ``TeardownError``."""
    stop = stop or asyncio.Event()
    tune_garbage_collector()
    with stop_on_signals(stop):
        logger.info("database: %s", settings.database_url_for_logs)
        if settings.admin_token is None:
            logger.warning("METAFLOWS_ADMIN_TOKEN is unset: only account tokens can use the API")
        service = await _unless_stopped(_start(settings, database_url), stop)
        if service is None:
            logger.info("stopped while starting")
            return
        async with service:
            await stop.wait()
            logger.info("shutting down; calls in progress continue in Asterisk")


async def _start(settings: Settings, database_url: str) -> Service:
    """The service with its REST API listening and its ARI connection started."""
    try:
        service = await open_service(settings, database_url)
    except (StartupError, asyncio.CancelledError):
        raise
    except Exception as exc:
        raise StartupError(f"cannot start: {_one_line(exc)}") from exc
    try:
        url = await service.start_api(settings.api_listen)
        logger.info("REST API listening on %s/v2", url)
        service.start_speech_check()
        service.start_ari()
    except BaseException as exc:
        await service.lifecycle.undo_after(exc)
        if isinstance(exc, Exception) and not isinstance(exc, StartupError):
            raise StartupError(f"cannot start: {_one_line(exc)}") from exc
        raise
    return service


async def _unless_stopped(starting: Awaitable[Service], stop: asyncio.Event) -> Service | None:
    """``starting``'s service, or None if ``stop`` was set first (the start is then cancelled,
    which undoes what it had started)."""
    start = asyncio.ensure_future(starting)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({start, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not start.done():
            start.cancel()
        # The start's own result or failure, once what it started is undone.
        await asyncio.wait({start, stopped})
    if start.cancelled():
        return None
    return start.result()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` while the event loop runs; the handlers there before
    (e.g. the command line's, which covers the embedded database's start) come back after."""
    loop = asyncio.get_running_loop()
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            loop.remove_signal_handler(signum)
            if handler is not None:
                signal.signal(signum, handler)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
