"""ari-metaflows: run the service, apply migrations, manage account API tokens."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import __version__
from .api.requests import ID_RE
from .app import STOP_SIGNALS, migrate, serve
from .auth.tokens import TokenStore
from .config import ConfigError, Settings, load_settings
from .db.database import Database
from .db.embedded import embedded_postgres
from .errors import DatastoreUnavailable
from .lifecycle import StartupError, TeardownError
from .logs import configure_logging

logger = logging.getLogger("ari_metaflows")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ari-metaflows", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "--config", type=Path, help="a KEY=VALUE file of settings (the environment wins)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the ARI application and the REST API")
    commands.add_parser("migrate", help="apply pending database migrations and exit")
    simulate = commands.add_parser(
        "simulate", help="run a simulated Asterisk (ARI) with phones, on loopback"
    )
    simulate.add_argument("--listen", default="127.0.0.1:8088", help="HOST:PORT")
    simulate.add_argument("--username", default="asterisk")
    simulate.add_argument("--password", default="secret")
    simulate.add_argument(
        "--phone",
        action="append",
        default=[],
        metavar="NAME[:ACCOUNT[:USER]]",
        help="a phone (repeatable); default: 1001:acc1:alice, 1002:acc1:bob, 1003:acc1:carol",
    )
    token = commands.add_parser("token", help="manage account API tokens").add_subparsers(
        dest="token_command", required=True
    )
    create = token.add_parser("create", help="create a token for one account (printed once)")
    create.add_argument("--account", required=True)
    create.add_argument("--label", default="")
    listing = token.add_parser("list", help="list tokens (never their secret)")
    listing.add_argument("--account")
    revoke = token.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id")
    api_key = commands.add_parser(
        "api-key", help="an account's api_key, traded for a token with PUT /v2/api_auth"
    ).add_subparsers(dest="api_key_command", required=True)
    show = api_key.add_parser("show", help="print the account's api_key (made on first need)")
    show.add_argument("--account", required=True)
    rotate = api_key.add_parser(
        "rotate", help="replace the api_key; the old one and its sessions stop working"
    )
    rotate.add_argument("--account", required=True)
    return parser


@contextlib.contextmanager
def _database_url(settings: Settings) -> Iterator[str]:
    """The configured database, or the embedded one, stopped again on the way out."""
    if settings.database_url is not None:
        yield settings.database_url
        return
    with embedded_postgres(settings.data_dir) as url:
        yield url


@contextlib.contextmanager
def _stop_requested_by_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT/SIGTERM before or after the event loop runs (e.g. while the embedded database
    starts or stops) set ``stop`` instead of killing the process on the spot, so that what
    started is undone; while the loop runs, ``serve`` handles them on the loop."""
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda _signum, _frame: stop.set())
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _serve(settings: Settings) -> int:
    """Exit codes: 0 stopped on request, 2 could not start (one line on stderr), 1 something
    failed while stopping (each failure logged)."""
    stop = asyncio.Event()
    try:
        with _stop_requested_by_signals(stop), _database_url(settings) as url:
            if not stop.is_set():
                asyncio.run(serve(settings, url, stop=stop))
    except StartupError as exc:
        logger.debug("start-up failure", exc_info=exc)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TeardownError as exc:
        print(f"error: {exc.message} (each logged above)", file=sys.stderr)
        return 1
    return 0


async def _with_db(url: str, args: argparse.Namespace) -> int:
    db = Database(url)
    await db.open(max_size=2)
    try:
        await migrate(db)
        if args.command == "migrate":
            print("database is up to date")
            return 0
        tokens = TokenStore(db)
        if args.command == "api-key":
            if not ID_RE.match(args.account):
                print(f"error: invalid account id {args.account!r}", file=sys.stderr)
                return 2
            if args.api_key_command == "rotate":
                print(await tokens.rotate_api_key(args.account))
            else:
                print(await tokens.api_key(args.account))
            return 0
        if args.token_command == "create":
            if not ID_RE.match(args.account):
                print(f"error: invalid account id {args.account!r}", file=sys.stderr)
                return 2
            info, secret = await tokens.create(args.account, args.label)
            print(f"token id: {info.id}\naccount:  {info.account_id}\ntoken:    {secret}")
            print("Keep the token now: it is stored hashed and cannot be shown again.")
            return 0
        if args.token_command == "list":
            for item in await tokens.list(args.account):
                state = "revoked" if item.revoked_at else "active"
                created = f"{item.created_at:%Y-%m-%d}"
                print(f"{item.id}  {item.account_id}  {state}  {created}  {item.label}")
            return 0
        if await tokens.revoke(args.token_id):
            print(f"revoked {args.token_id}")
            return 0
        print(f"error: no active token with id {args.token_id}", file=sys.stderr)
        return 1
    finally:
        await db.close()


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from .config import parse_listen
    from .sim.control import add_control_routes, demo_dialplan
    from .sim.phones import SimulatedAsteriskServer

    try:
        listen = parse_listen(args.listen, "--listen")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    phones = args.phone or ["1001:acc1:alice", "1002:acc1:bob", "1003:acc1:carol"]

    async def run() -> None:
        sim = SimulatedAsteriskServer(username=args.username, password=args.password)
        names = []
        for spec in phones:
            name, _, rest = spec.partition(":")
            account, _, user = rest.partition(":")
            variables = {"METAFLOWS_ACCOUNT_ID": account} if account else {}
            if user:
                variables["METAFLOWS_USER_ID"] = user
            sim.add_phone(name, variables=variables)
            names.append(name)
        demo_dialplan(sim, names, settings.ari_app)
        add_control_routes(sim)
        sim.url = await sim.server.start(listen.host, listen.port)
        logger.info("simulated Asterisk on %s/ari (phones: %s)", sim.url, ", ".join(names))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            await sim.server.stop()

    asyncio.run(run())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(config_file=args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "simulate":
        return _simulate(args, settings)
    if args.command == "serve":
        return _serve(settings)
    try:
        with _database_url(settings) as url:
            return asyncio.run(_with_db(url, args))
    except ConfigError as exc:  # e.g. no database URL and no embedded PostgreSQL installed
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DatastoreUnavailable:
        print(f"error: database unavailable ({settings.database_url_for_logs})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
