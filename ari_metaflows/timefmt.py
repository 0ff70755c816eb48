"""The one timestamp format of every answer and log line: ISO 8601 UTC with milliseconds and
``Z``, e.g. ``2026-11-30T04:05:06.123Z`` (issue 17; see docs/decisions.md)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(moment: datetime | float | None = None) -> str:
    """Format a datetime (naive means UTC), Unix seconds, or now."""
    if moment is None:
        moment = datetime.now(UTC)
    elif isinstance(moment, (int, float)):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
