"""What the API handlers need from the rest of the service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..audit import EventStore
from ..auth.tokens import Authenticator
from ..devices import DeviceStore
from ..features.tts.media import SpeechMedia
from ..metaflows.store import MetaflowStore
from ..metrics import Metrics
from ..recordings import RecordingJournal, RecordingStore

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
    events: EventStore | None = None
    metrics: Metrics = field(default_factory=Metrics)
    speech: SpeechMedia | None = None  # signed speech files for Asterisk (tts)
    devices: DeviceStore | None = None


CONTEXT = web.AppKey("context", ApiContext)
REQUEST_ID = web.RequestKey("request_id", str)
AUTH_TOKEN = web.RequestKey("auth_token", str)
