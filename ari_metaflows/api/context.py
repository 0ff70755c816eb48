"""What the API handlers need from the rest of the service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..ari.stored import StoredFiles
from ..audit import EventStore
from ..auth.tokens import Authenticator
from ..devices import DeviceStore
from ..features.tts.media import SpeechMedia
from ..metaflows.store import MetaflowStore
from ..metrics import Metrics
from ..recordings import RecordingJournal, RecordingStore
from .offload import Offloader

ReadinessProbe = Callable[[], Awaitable[bool]]


@dataclass
class ApiContext:
    store: MetaflowStore
    authenticator: Authenticator
    readiness: dict[str, ReadinessProbe] = field(default_factory=dict)
    engine: Any = None  # calls.engine.CallEngine when the ARI side runs
    calls: Any = None  # cluster.directory.CallDirectory: every engine, and other instances'
    recordings: RecordingStore | None = None
    journal: RecordingJournal | None = None
    # Every configured Asterisk's stored recordings (None: the engine's own ARI connection).
    stored: StoredFiles | None = None
    events: EventStore | None = None
    metrics: Metrics = field(default_factory=Metrics)
    speech: SpeechMedia | None = None  # signed speech files for Asterisk (tts)
    devices: DeviceStore | None = None
    cors_origin: str = "*"  # Access-Control-Allow-Origin on every answer (METAFLOWS_CORS_ORIGIN)


CONTEXT = web.AppKey("context", ApiContext)
OFFLOAD = web.AppKey("offload", Offloader)
REQUEST_ID = web.RequestKey("request_id", str)
AUTH_TOKEN = web.RequestKey("auth_token", str)
