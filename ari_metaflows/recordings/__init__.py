"""Call recordings: their rows, the write-behind journal that never loses one, the queries."""

from .journal import RecordingJournal
from .model import Recording
from .store import RecordingPage, RecordingStore

__all__ = ["Recording", "RecordingJournal", "RecordingPage", "RecordingStore"]
