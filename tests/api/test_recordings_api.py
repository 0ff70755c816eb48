"""``/v2/accounts/{A}/recordings``: listing, paging, the audio file, deletion, isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ari_metaflows.auth.tokens import TokenStore
from ari_metaflows.db.database import Database
from ari_metaflows.recordings import Recording, RecordingStore
from ari_metaflows.sim.core import wav_of_silence
from ari_metaflows.sim.model import StoredRecording
from ari_metaflows.testing.scenario import SimDriver

from ..helpers.engine_service import ADMIN, Service

# The API these tests call runs on the simulator (its stored recordings are set up directly).
pytestmark = pytest.mark.usefixtures("sim_service")

BASE = "/v2/accounts/acc1/recordings"


def core(service: Service) -> Any:
    assert isinstance(service.driver, SimDriver)
    return service.driver.sim.core


async def add(
    db: Database,
    *,
    account: str = "acc1",
    owner: str = "u1",
    call: str = "c1",
    minutes_ago: int = 0,
    state: str = "finished",
) -> Recording:
    started = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    recording = Recording(
        account_id=account,
        owner_type="user",
        owner_id=owner,
        call_id=call,
        legs=["a", "b"],
        format="wav",
        started_at=started,
        state=state,
    )
    if state != "recording":
        recording.ended_at = started + timedelta(seconds=3)
        recording.duration = 3.0
    await RecordingStore(db).upsert(recording)
    return recording


def stored(service: Service, recording: Recording, seconds: float = 0.5) -> None:
    core(service).stored_recordings[recording.name] = StoredRecording(
        name=recording.name, format="wav", duration=seconds, muted_seconds=0, heard=frozenset()
    )


async def test_list_is_newest_first_filtered_and_paged(api: Any, db: Database) -> None:
    made = [await add(db, minutes_ago=m, call=f"c{m % 2}") for m in range(5)]
    await add(db, account="acc2")
    body = await (await api.get(BASE, headers=ADMIN)).json()
    assert [r["id"] for r in body["data"]] == [r.id for r in made]
    assert body["page_size"] == 5
    assert "next_start_key" not in body
    assert body["data"][0]["state"] == "finished"
    assert body["data"][0]["content_type"] == "audio/wav"

    first = await (await api.get(BASE, params={"page_size": "2"}, headers=ADMIN)).json()
    assert [r["id"] for r in first["data"]] == [made[0].id, made[1].id]
    key = first["next_start_key"]
    second = await (
        await api.get(BASE, params={"page_size": "2", "start_key": key}, headers=ADMIN)
    ).json()
    assert [r["id"] for r in second["data"]] == [made[2].id, made[3].id]
    assert second["start_key"] == key

    by_call = await (await api.get(BASE, params={"call_id": "c1"}, headers=ADMIN)).json()
    assert {r["call_id"] for r in by_call["data"]} == {"c1"}
    assert len(by_call["data"]) == 2
    by_owner = await (await api.get(BASE, params={"owner_id": "nobody"}, headers=ADMIN)).json()
    assert by_owner["data"] == []


@pytest.mark.parametrize(
    "params",
    [{"page_size": "0"}, {"page_size": "x"}, {"start_key": "!!"}, {"owner_id": "bad id"}],
)
async def test_bad_query_parameters_are_400(api: Any, params: dict[str, str]) -> None:
    response = await api.get(BASE, params=params, headers=ADMIN)
    assert response.status == 400
    assert (await response.json())["status"] == "error"


async def test_get_one_and_its_audio(api: Any, db: Database, sim_service: Service) -> None:
    recording = await add(db)
    stored(sim_service, recording, seconds=0.5)
    body = await (await api.get(f"{BASE}/{recording.id}", headers=ADMIN)).json()
    assert body["data"]["name"] == recording.name
    assert body["data"]["duration"] == 3.0
    response = await api.get(f"{BASE}/{recording.id}/file", headers=ADMIN)
    assert response.status == 200
    assert response.headers["Content-Type"] == "audio/wav"
    assert await response.read() == wav_of_silence(0.5)


async def test_audio_missing_or_still_recording(
    api: Any, db: Database, sim_service: Service
) -> None:
    missing = await add(db)
    response = await api.get(f"{BASE}/{missing.id}/file", headers=ADMIN)
    assert response.status == 404
    assert "no stored audio" in (await response.json())["data"]["message"]
    live = await add(db, state="recording")
    response = await api.get(f"{BASE}/{live.id}/file", headers=ADMIN)
    assert response.status == 409
    response = await api.delete(f"{BASE}/{live.id}", headers=ADMIN)
    assert response.status == 409


async def test_delete_removes_row_and_stored_file(
    api: Any, db: Database, sim_service: Service
) -> None:
    recording = await add(db)
    stored(sim_service, recording)
    response = await api.delete(f"{BASE}/{recording.id}", headers=ADMIN)
    assert response.status == 200
    assert recording.name not in core(sim_service).stored_recordings
    assert (await api.get(f"{BASE}/{recording.id}", headers=ADMIN)).status == 404
    assert (await api.delete(f"{BASE}/{recording.id}", headers=ADMIN)).status == 404


async def test_asterisk_down_keeps_the_row(api: Any, db: Database, sim_service: Service) -> None:
    recording = await add(db)
    stored(sim_service, recording)
    sim_service.engine.gateway = None  # as while reconnecting
    response = await api.delete(f"{BASE}/{recording.id}", headers=ADMIN)
    assert response.status == 503
    assert (await response.json())["message"] == "asterisk_unreachable"
    assert (await api.get(f"{BASE}/{recording.id}/file", headers=ADMIN)).status == 503
    assert (await api.get(f"{BASE}/{recording.id}", headers=ADMIN)).status == 200


async def test_account_isolation(api: Any, db: Database, tokens: TokenStore) -> None:
    theirs = await add(db, account="acc2")
    _, acc1_token = await tokens.create("acc1")
    mine = {"X-Auth-Token": acc1_token}
    assert (await api.get("/v2/accounts/acc2/recordings", headers=mine)).status == 403
    for path in (f"{BASE}/{theirs.id}", f"{BASE}/{theirs.id}/file"):
        assert (await api.get(path, headers=mine)).status == 404
    assert (await api.delete(f"{BASE}/{theirs.id}", headers=mine)).status == 404
    assert (await api.get(f"/v2/accounts/acc2/recordings/{theirs.id}", headers=mine)).status == 403
    assert (await api.get(BASE, headers={})).status == 401
    response = await api.post(BASE, json={"data": {}}, headers=ADMIN)
    assert response.status == 405


async def test_database_down_is_503(api: Any, db: Database) -> None:
    await db.close()
    response = await api.get(BASE, headers=ADMIN)
    assert response.status == 503
    assert (await response.json())["message"] == "datastore_unreachable"
