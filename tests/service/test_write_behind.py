"""The write-behind helper shared by the audit trail and the recordings journal: the writer
retries with the policy while the database is away, flush waits (bounded), stop gives pending
rows a moment and keeps the rest, a file left by a previous run is read back line by line.
(The two real users are tested end to end in test_observability.py and
test_transfer_and_recording.py; this pins the shared contract with a minimal subclass.)"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from ari_metaflows.backoff import Backoff
from ari_metaflows.errors import DatastoreUnavailable
from ari_metaflows.writebehind import WriteBehind, read_json_lines


class Rows(WriteBehind[str]):
    """Rows stored one by one into ``self.table``; the first ``outage`` attempts find the
    database away; a row named "bad" is refused for good and set aside."""

    name = "test rows"

    def __init__(self, outage: int = 0, kept: list[str] | None = None) -> None:
        super().__init__(Backoff(initial=0.01, maximum=0.02))
        self.buffer: list[str] = []
        self.table: list[str] = []
        self.refused: list[str] = []
        self.outage = outage
        self.kept = kept if kept is not None else []

    @property
    def pending(self) -> int:
        return len(self.buffer)

    def add(self, row: str) -> None:
        self.buffer.append(row)
        self._wake_writer()

    def _load(self) -> None:
        self.buffer.extend(self.kept)
        self.kept.clear()

    def _next_unit(self) -> str | None:
        return self.buffer[0] if self.buffer else None

    async def _store(self, unit: str) -> bool:
        await asyncio.sleep(0)
        if self.outage:
            self.outage -= 1
            raise DatastoreUnavailable()
        if unit == "bad":
            self.buffer.remove(unit)
            self.refused.append(unit)
            return False
        self.table.append(unit)
        return True

    def _stored(self, unit: str) -> None:
        self.buffer.remove(unit)

    def _closed(self) -> None:
        self.kept.extend(self.buffer)
        self.buffer.clear()


async def test_rows_are_stored_in_order_after_an_outage_with_the_policy_delays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = Rows(outage=3)
    await rows.start()
    try:
        with caplog.at_level(logging.WARNING, "ari_metaflows.writebehind"):
            for name in ("a", "bad", "b"):
                rows.add(name)
            assert await rows.flush(timeout=5)
    finally:
        await rows.close()
    assert rows.table == ["a", "b"]
    assert rows.refused == ["bad"]
    assert rows.failed_attempts == 3
    waits = [r.getMessage() for r in caplog.records]
    assert len(waits) == 3
    assert all(m.startswith("test rows: database unavailable, 3 row(s) wait") for m in waits)


async def test_flush_is_bounded_and_stop_keeps_what_could_not_be_stored() -> None:
    kept: list[str] = []
    rows = Rows(outage=1_000_000, kept=kept)
    await rows.start()
    rows.add("x")
    rows.add("y")
    assert not await rows.flush(timeout=0.1)
    await rows.stop(timeout=0.05)
    assert kept == ["x", "y"]
    assert rows.table == []
    await rows.close()  # twice is harmless
    assert kept == ["x", "y"]

    again = Rows(kept=kept)  # the next start takes them back and stores them
    await again.start()
    try:
        assert await again.flush(timeout=5)
    finally:
        await again.stop()
    assert again.table == ["x", "y"]
    assert kept == []


async def test_close_while_a_store_is_in_flight_stops_the_writer(tmp_path: Path) -> None:
    rows = Rows(outage=1_000_000)
    await rows.start()
    rows.add("x")
    await asyncio.sleep(0.05)  # retrying
    await rows.close()
    assert [t for t in asyncio.all_tasks() if t.get_name() == "test-rows"] == []
    assert rows.kept == ["x"]


def test_a_json_lines_file_is_read_back_skipping_what_cannot_be_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"n": 1}\n{broken\n{"m": 2}\n{"n": 3}\n')
    seen: list[Any] = []
    with caplog.at_level(logging.WARNING, "ari_metaflows.writebehind"):
        assert read_json_lines(path, "test file", lambda line: seen.append(line["n"]))
    assert seen == [1, 3]
    assert [r.getMessage().split(" unreadable")[0] for r in caplog.records] == [
        f"test file {path}:2",
        f"test file {path}:3",
    ]
    assert not read_json_lines(tmp_path / "missing", "test file", seen.append)
