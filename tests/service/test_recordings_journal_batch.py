"""The recordings journal writes a burst of rows in one round trip (issue 20), and a row the
database refuses in such a batch is set aside without holding the others back. Real
PostgreSQL (embedded)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from ari_metaflows.db.database import Database
from ari_metaflows.recordings import Recording, RecordingStore
from ari_metaflows.recordings.journal import RecordingJournal


class CountingStore(RecordingStore):
    """The real store, counting its round trips."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.rounds: list[int] = []  # rows per round trip

    async def upsert(self, recording: Recording) -> None:
        self.rounds.append(1)
        await super().upsert(recording)

    async def upsert_many(self, recordings: Sequence[Recording]) -> None:
        self.rounds.append(len(recordings))
        await super().upsert_many(recordings)


def recording(n: int, owner_type: str = "user") -> Recording:
    return Recording(
        account_id="acc1",
        owner_type=owner_type,
        owner_id="u1",
        call_id=f"call-{n}",
        legs=["caller"],
        format="wav",
    )


async def test_a_burst_of_rows_is_one_round_trip(db: Database, tmp_path: Path) -> None:
    store = CountingStore(db)
    journal = RecordingJournal(store, tmp_path / "recordings.journal")
    rows = [recording(n) for n in range(30)]
    await journal.start()
    try:
        for row in rows:  # in one go, before the writer runs: calls starting recordings
            journal.submit(row)
        for row in rows[:10]:  # some end at once: a newer version of the same rows
            row.end("finished", duration=1.0)
            journal.submit(row)
        assert await journal.flush(timeout=5)
    finally:
        await journal.close()
    assert len(store.rounds) <= 3, store.rounds  # one per row would be 30 or more
    page = await RecordingStore(db).page("acc1", page_size=100)
    states = {r.call_id: r.state for r in page.recordings}
    assert len(states) == 30
    assert [states[f"call-{n}"] for n in range(10)] == ["finished"] * 10
    assert set(states[f"call-{n}"] for n in range(10, 30)) == {"recording"}


async def test_a_refused_row_in_a_batch_is_set_aside_and_the_others_stored(
    db: Database, tmp_path: Path
) -> None:
    store = CountingStore(db)
    journal = RecordingJournal(store, tmp_path / "recordings.journal")
    await journal.start()
    try:
        good = [recording(n) for n in range(3)]
        bad = recording(99, owner_type="team")  # the table's CHECK refuses it
        for row in (good[0], bad, *good[1:]):
            journal.submit(row)
        assert await journal.flush(timeout=5)
    finally:
        await journal.close()
    page = await RecordingStore(db).page("acc1", page_size=100)
    assert sorted(r.call_id for r in page.recordings) == ["call-0", "call-1", "call-2"]
    rejected = journal.rejected_path.read_text()
    assert bad.id in rejected
    assert "call-0" not in rejected


async def test_rows_arriving_one_by_one_wait_a_moment_for_company(
    db: Database, tmp_path: Path
) -> None:
    store = CountingStore(db)
    journal = RecordingJournal(store, tmp_path / "recordings.journal")
    journal.linger = 0.3
    await journal.start()
    try:
        for n in range(5):  # recordings of calls a few ms apart
            journal.submit(recording(n))
            await asyncio.sleep(0.01)
        assert await journal.flush(timeout=5)
    finally:
        await journal.close()
    assert store.rounds == [5]
