"""What a recorded call costs Asterisk at its end (issue 20): when the presser hangs up,
Asterisk has already ended the snoop channel and its recording, so the service sends no stop
and no hangup for them; the row is finished and the file holds both parties all the same.

Simulator only: these count the requests the simulated Asterisk received.
"""

from __future__ import annotations

from ari_metaflows.db.database import Database

from ..helpers.engine_service import FAST, Service, connected_call, requests_to, wait_until
from .test_recording_snoop import record_doc, rows, simulator, snoops


async def test_the_presser_hanging_up_ends_the_recording_without_requests(
    service: Service, db: Database
) -> None:
    core = simulator(service)
    await record_doc(service)
    alice, _bob = await connected_call(service)
    await alice.press("*9", FAST)
    await wait_until(lambda: any(r.state == "recording" for r in core.live_recordings.values()))
    (snoop,) = snoops(core)
    (live,) = core.live_recordings.values()
    await alice.hangup()
    await service.wait_no_calls()
    await wait_until(lambda: not snoops(core) and not core.live_recordings)
    assert requests_to(service, f"/recordings/live/{live.name}/stop") == []
    assert [m for m, path, _ in core.requests if path.endswith(f"/channels/{snoop.id}")] == []
    assert core.stored_recordings[live.name].heard == {"alice", "bob"}
    (row,) = await rows(service, db)
    assert (row.name, row.state) == (live.name, "finished")


async def test_the_other_party_hanging_up_still_stops_the_recording(
    service: Service, db: Database
) -> None:
    """The presser is still there (the service hangs it up next): the recording is stopped
    and its snoop hung up by request, as before."""
    core = simulator(service)
    await record_doc(service)
    alice, bob = await connected_call(service)
    await alice.press("*9", FAST)
    await wait_until(lambda: any(r.state == "recording" for r in core.live_recordings.values()))
    (live,) = core.live_recordings.values()
    await bob.hangup()
    await service.wait_no_calls()
    await wait_until(lambda: not snoops(core) and not core.live_recordings)
    assert len(requests_to(service, f"/recordings/live/{live.name}/stop")) == 1
    (row,) = await rows(service, db)
    assert (row.name, row.state) == (live.name, "finished")
