"""One call recording, as stored and as the API shows it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..timefmt import iso_utc

STATES = ("recording", "finished", "failed")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Recording:
    """A recording's whole row. ``version`` grows with every change so that an older copy can
    never overwrite a newer one (see journal)."""

    account_id: str
    owner_type: str
    owner_id: str
    call_id: str
    legs: list[str]
    format: str
    label: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: str = "recording"
    started_at: datetime = field(default_factory=utc_now)
    ended_at: datetime | None = None
    duration: float | None = None
    failure_cause: str | None = None
    version: int = 1
    asterisk: str | None = None  # the server whose call made it (None: rows before 0009)

    @property
    def name(self) -> str:
        """Asterisk's recording name: flat (no directories), derived from the id."""
        return f"mf-{self.id}"

    @property
    def live(self) -> bool:
        return self.state == "recording"

    def end(self, state: str, *, duration: float | None = None, cause: str | None = None) -> None:
        """Complete the row (a later, more precise duration from Asterisk may refine it)."""
        self.ended_at = self.ended_at or utc_now()
        self.state = state
        if duration is not None:
            self.duration = float(duration)
        elif self.duration is None:
            self.duration = round((self.ended_at - self.started_at).total_seconds(), 3)
        if cause is not None:
            self.failure_cause = cause
        self.version += 1

    # -- serialisation --------------------------------------------------------------------

    def to_journal(self) -> dict[str, Any]:
        data = dict(vars(self))  # not asdict(): its deep copy was a visible share of a call's CPU
        data["legs"] = list(self.legs)
        data["started_at"] = self.started_at.isoformat()
        data["ended_at"] = self.ended_at.isoformat() if self.ended_at else None
        return data

    @classmethod
    def from_journal(cls, data: dict[str, Any]) -> Recording:
        values = dict(data)
        values["started_at"] = datetime.fromisoformat(values["started_at"])
        if values.get("ended_at"):
            values["ended_at"] = datetime.fromisoformat(values["ended_at"])
        return cls(**values)

    @classmethod
    def from_row(cls, row: Any) -> Recording:
        return cls(
            id=row["id"],
            account_id=row["account_id"],
            owner_type=row["owner_type"],
            owner_id=row["owner_id"],
            call_id=row["call_id"],
            legs=list(row["legs"]),
            format=row["format"],
            label=row["label"],
            state=row["state"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            duration=row["duration"],
            failure_cause=row["failure_cause"],
            version=row["version"],
            asterisk=row["asterisk"],
        )

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "owner_type": self.owner_type,
            "owner_id": self.owner_id,
            "call_id": self.call_id,
            "legs": list(self.legs),
            "name": self.name,
            "format": self.format,
            "label": self.label,
            "state": self.state,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at) if self.ended_at else None,
            "duration": self.duration,
            "failure_cause": self.failure_cause,
            "content_type": content_type(self.format),
            "asterisk": self.asterisk,
        }


def _iso(moment: datetime) -> str:
    return iso_utc(moment)


_CONTENT_TYPES = {
    "wav": "audio/wav",
    "wav16": "audio/wav",
    "wav49": "audio/wav",
    "gsm": "audio/gsm",
    "ulaw": "audio/basic",
    "alaw": "audio/x-alaw-basic",
    "au": "audio/basic",
    "g722": "audio/G722",
}


def content_type(fmt: str) -> str:
    return _CONTENT_TYPES.get(fmt, "application/octet-stream")
