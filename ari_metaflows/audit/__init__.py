"""The audit trail: every metaflow execution, stored without slowing the DTMF path."""

from .model import MetaflowEvent
from .store import EventPage, EventStore
from .trail import AuditTrail

__all__ = ["AuditTrail", "EventPage", "EventStore", "MetaflowEvent"]
