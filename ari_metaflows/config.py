"""Settings read from environment variables (and optionally a KEY=VALUE file).

Every value is validated once at start-up so that a typo fails loudly with the name of the
variable, instead of surfacing later as a confusing runtime error. Secrets never appear in
``repr()`` or in log lines.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class AsteriskServer:
    """One Asterisk this instance may serve: its name (tags its calls) and how to reach ARI."""

    name: str
    url: str
    username: str = ""
    password: str = field(default="", repr=False)


DEFAULT_ASTERISK = "default"  # the name of the one server ARI_URL describes


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class Settings:
    ari_url: str = "http://127.0.0.1:8088"
    ari_username: str = ""
    ari_password: str = field(default="", repr=False)
    ari_app: str = "metaflows"
    database_url: str | None = field(default=None, repr=False)
    data_dir: Path = Path(".ari-metaflows")
    api_listen: ListenAddress = ListenAddress("127.0.0.1", 8000)
    admin_token: str | None = field(default=None, repr=False)
    default_account_id: str | None = None
    transfer_context: str = "default"
    park_slots: str = "701-720"
    park_timeout_context: str = "metaflows-park-timeout"
    log_level: str = "INFO"
    # Signs the speech URLs Asterisk fetches (tts); random per process unless set.
    media_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    media_base_url: str | None = None  # how Asterisk reaches the API listener
    # Several Asterisk servers (METAFLOWS_ASTERISKS); empty: the one ARI_URL names, "default".
    asterisks: tuple[AsteriskServer, ...] = ()
    instance_id: str = field(default_factory=default_instance_id)
    # Several instances share the database: leases, live state, routed actions (issue 18).
    cluster: bool = False

    @property
    def asterisk_servers(self) -> tuple[AsteriskServer, ...]:
        """The servers this instance may serve (at least one)."""
        if self.asterisks:
            return self.asterisks
        return (
            AsteriskServer(DEFAULT_ASTERISK, self.ari_url, self.ari_username, self.ari_password),
        )

    @property
    def media_url_base(self) -> str:
        """Base URL of the speech route: the setting, else derived from the API listener."""
        if self.media_base_url is not None:
            return self.media_base_url
        host = self.api_listen.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.api_listen.port}"

    log_format: str = "text"  # or "json": one JSON object per line
    cors_origin: str = "*"  # Access-Control-Allow-Origin of every API answer

    @property
    def database_url_for_logs(self) -> str:
        """The database URL without its password, or a note that the embedded server is used."""
        if self.database_url is None:
            return f"embedded PostgreSQL in {self.data_dir / 'pgdata'}"
        return redact_url(self.database_url)


_ID_RE = re.compile(r"^[A-Za-z0-9_@+.-]{1,128}$")
_APP_RE = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
_CONTEXT_RE = re.compile(r"^[A-Za-z0-9_.+-]{1,80}$")
_CORS_ORIGIN_RE = re.compile(r"^(\*|https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?)$")
_ASTERISK_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def redact_url(url: str) -> str:
    """Drop any password from a URL so it can be logged."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def parse_listen(value: str, name: str) -> ListenAddress:
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ConfigError(f"{name} must look like HOST:PORT, got {value!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name}: port {port} is out of range 0-65535")
    host = host.strip("[]") or "127.0.0.1"
    return ListenAddress(host, port)


def _http_url(value: str, name: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http:// or https:// URL, got {redact_url(value)!r}")
    if parts.username or parts.password:
        raise ConfigError(f"{name} must not carry credentials; use ARI_USERNAME and ARI_PASSWORD")
    return value.rstrip("/")


def _database_url(value: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            "METAFLOWS_DATABASE_URL must be a postgresql:// URL "
            f"(got scheme {parts.scheme or 'none'!r}); unset it to use the embedded server"
        )
    return value


def parse_asterisks(
    value: str, username: str, password: str, get: Callable[[str], str | None]
) -> tuple[AsteriskServer, ...]:
    """``name=url,name2=url2``. Credentials are ARI_USERNAME / ARI_PASSWORD unless
    ARI_USERNAME_<NAME> / ARI_PASSWORD_<NAME> (name upper-cased, ``-`` as ``_``) are set."""
    servers: list[AsteriskServer] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, url = item.partition("=")
        name = name.strip()
        if not sep or not _ASTERISK_RE.match(name):
            raise ConfigError(
                "METAFLOWS_ASTERISKS must look like name=http://host:8088,name2=http://…; "
                f"names match {_ASTERISK_RE.pattern}, got {item!r}"
            )
        if any(s.name == name for s in servers):
            raise ConfigError(f"METAFLOWS_ASTERISKS names {name!r} twice")
        key = name.upper().replace("-", "_")
        servers.append(
            AsteriskServer(
                name,
                _http_url(url.strip(), f"METAFLOWS_ASTERISKS ({name})"),
                get(f"ARI_USERNAME_{key}") or username,
                get(f"ARI_PASSWORD_{key}") or password,
            )
        )
    if not servers:
        raise ConfigError("METAFLOWS_ASTERISKS is set but names no server")
    return tuple(servers)


def _flag(value: str | None, name: str) -> bool:
    if value is None:
        return False
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigError(f"{name} must be on or off, got {value!r}")


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a KEY=VALUE file (blank lines and # comments allowed, optional quotes)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: Path | None = None
) -> Settings:
    """Build settings from a config file (if any) overlaid by the environment."""
    env: dict[str, str] = {}
    if config_file is not None:
        env.update(read_env_file(config_file))
    env.update(os.environ if environ is None else environ)

    def get(name: str) -> str | None:
        value = env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    defaults = Settings()
    ari_app = get("ARI_APP") or defaults.ari_app
    if not _APP_RE.match(ari_app):
        raise ConfigError(f"ARI_APP must match {_APP_RE.pattern}, got {ari_app!r}")
    default_account = get("METAFLOWS_DEFAULT_ACCOUNT_ID")
    if default_account is not None and not _ID_RE.match(default_account):
        raise ConfigError(
            f"METAFLOWS_DEFAULT_ACCOUNT_ID must match {_ID_RE.pattern}, got {default_account!r}"
        )
    transfer_context = get("METAFLOWS_TRANSFER_CONTEXT") or defaults.transfer_context
    if not _CONTEXT_RE.match(transfer_context):
        raise ConfigError(
            f"METAFLOWS_TRANSFER_CONTEXT must be a dialplan context name, got {transfer_context!r}"
        )
    park_timeout_context = get("METAFLOWS_PARK_TIMEOUT_CONTEXT") or defaults.park_timeout_context
    if not _CONTEXT_RE.match(park_timeout_context):
        raise ConfigError(
            "METAFLOWS_PARK_TIMEOUT_CONTEXT must be a dialplan context name, "
            f"got {park_timeout_context!r}"
        )
    park_slots = get("METAFLOWS_PARK_SLOTS") or defaults.park_slots
    try:
        from .features.park.lots import parse_slot_range

        parse_slot_range(park_slots)
    except ValueError as exc:
        raise ConfigError(f"METAFLOWS_PARK_SLOTS: {exc}") from None
    admin_token = get("METAFLOWS_ADMIN_TOKEN")
    if admin_token is not None and len(admin_token) < 16:
        raise ConfigError("METAFLOWS_ADMIN_TOKEN must be at least 16 characters long")
    log_level = (get("METAFLOWS_LOG_LEVEL") or defaults.log_level).upper()
    if log_level not in _LOG_LEVELS:
        raise ConfigError(f"METAFLOWS_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
    media_secret = get("METAFLOWS_MEDIA_SECRET")
    if media_secret is not None and len(media_secret) < 16:
        raise ConfigError("METAFLOWS_MEDIA_SECRET must be at least 16 characters long")
    media_base_url = get("METAFLOWS_MEDIA_BASE_URL")
    log_format = (get("METAFLOWS_LOG_FORMAT") or defaults.log_format).lower()
    if log_format not in ("text", "json"):
        raise ConfigError("METAFLOWS_LOG_FORMAT must be text or json")
    cors_origin = get("METAFLOWS_CORS_ORIGIN") or defaults.cors_origin
    if not _CORS_ORIGIN_RE.match(cors_origin):
        raise ConfigError(
            "METAFLOWS_CORS_ORIGIN must be * or an origin like https://ui.example.com, "
            f"got {cors_origin!r}"
        )
    database_url = get("METAFLOWS_DATABASE_URL")
    listen = get("METAFLOWS_API_LISTEN")
    data_dir = get("METAFLOWS_DATA_DIR")
    ari_url = get("ARI_URL")
    ari_username = get("ARI_USERNAME") or ""
    ari_password = env.get("ARI_PASSWORD", "")
    asterisks_text = get("METAFLOWS_ASTERISKS")
    asterisks = (
        parse_asterisks(asterisks_text, ari_username, ari_password, get) if asterisks_text else ()
    )
    instance_id = get("METAFLOWS_INSTANCE_ID") or default_instance_id()
    if not _ID_RE.match(instance_id):
        raise ConfigError(f"METAFLOWS_INSTANCE_ID must match {_ID_RE.pattern}, got {instance_id!r}")
    return Settings(
        ari_url=_http_url(ari_url, "ARI_URL") if ari_url else defaults.ari_url,
        ari_username=ari_username,
        ari_password=ari_password,
        ari_app=ari_app,
        database_url=_database_url(database_url) if database_url else None,
        data_dir=Path(data_dir) if data_dir else defaults.data_dir,
        api_listen=parse_listen(listen, "METAFLOWS_API_LISTEN") if listen else defaults.api_listen,
        admin_token=admin_token,
        default_account_id=default_account,
        transfer_context=transfer_context,
        park_slots=park_slots,
        park_timeout_context=park_timeout_context,
        log_level=log_level,
        media_secret=media_secret.encode() if media_secret else secrets.token_bytes(32),
        media_base_url=(
            _http_url(media_base_url, "METAFLOWS_MEDIA_BASE_URL") if media_base_url else None
        ),
        log_format=log_format,
        cors_origin=cors_origin,
        asterisks=asterisks,
        instance_id=instance_id,
        cluster=_flag(get("METAFLOWS_CLUSTER"), "METAFLOWS_CLUSTER"),
    )
