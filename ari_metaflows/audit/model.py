"""One metaflow execution as stored and as the API shows it."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from ..timefmt import iso_utc

COLUMNS = (
    "id",
    "account_id",
    "occurred_at",
    "call_id",
    "leg",
    "channel_id",
    "owner",
    "user_id",
    "device_id",
    "trigger",
    "collected",
    "matched_key",
    "match_kind",
    "module",
    "outcome",
    "steps",
    "dispatch_ms",
    "duration_ms",
    "digits",
)


@dataclass
class MetaflowEvent:
    account_id: str
    call_id: str
    leg: str
    trigger: str  # "dtmf" or "api"
    outcome: str
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    channel_id: str | None = None
    owner: str | None = None
    user_id: str | None = None
    device_id: str | None = None
    collected: str | None = None
    matched_key: str | None = None
    match_kind: str | None = None
    module: str | None = None
    steps: list[tuple[str, str]] = field(default_factory=list)
    dispatch_ms: float | None = None
    duration_ms: float | None = None
    digits: str | None = None  # what became of the code's digits: held, replayed, dropped, passed
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def record(self) -> tuple[Any, ...]:
        """The row in column order, for the batch insert."""
        values = dict(vars(self))  # not asdict(): no deep copy needed for a row
        values["steps"] = json.dumps([list(step) for step in self.steps])
        return tuple(values[column] for column in COLUMNS)

    def to_spill(self) -> dict[str, Any]:
        values = asdict(self)
        values["occurred_at"] = self.occurred_at.isoformat()
        values["steps"] = [list(step) for step in self.steps]
        return values

    @classmethod
    def from_spill(cls, entry: dict[str, Any]) -> MetaflowEvent:
        values = dict(entry)
        values["occurred_at"] = datetime.fromisoformat(str(values["occurred_at"]))
        values["steps"] = [(str(m), str(o)) for m, o in values.get("steps") or []]
        return cls(**values)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> MetaflowEvent:
        values = dict(row)
        values["steps"] = [(str(m), str(o)) for m, o in json.loads(values["steps"])]
        return cls(**values)

    def to_api(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "id": self.id,
            "timestamp": iso_utc(self.occurred_at),
            "call_id": self.call_id,
            "leg": self.leg,
            "trigger": self.trigger,
            "outcome": self.outcome,
            "steps": [{"module": m, "outcome": o} for m, o in self.steps],
        }
        optional = {
            "channel_id": self.channel_id,
            "owner": self.owner,
            "user_id": self.user_id,
            "device_id": self.device_id,
            "collected": self.collected,
            "key": self.matched_key,
            "match": self.match_kind,
            "module": self.module,
            "dispatch_ms": self.dispatch_ms,
            "duration_ms": self.duration_ms,
            "digits": self.digits,
        }
        shown.update({k: v for k, v in optional.items() if v is not None})
        return shown
