"""A recording's audio is read and deleted on the Asterisk whose call made it (issue 18, SPEC §8a):
any instance answers, whether or not it holds that server or any ARI connection.

The instance here is ``open_service`` with three configured servers — two simulated Asterisks
(ast1 first, ast2) and ast3 where nothing listens — and its ARI never started, as a standby's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ari_metaflows.api.server import create_app
from ari_metaflows.app import open_service
from ari_metaflows.config import AsteriskServer, Settings
from ari_metaflows.db.database import Database
from ari_metaflows.features.recording import current_recording
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.recordings import Recording, RecordingStore
from ari_metaflows.sim import SimulatedAsteriskServer
from ari_metaflows.sim.model import StoredRecording

from ..helpers.engine_service import (
    ACCOUNT,
    ADMIN,
    ADMIN_TOKEN,
    FAST,
    Service,
    connected_call,
    wait_until,
)

BASE = "/v2/accounts/acc1/recordings"


@dataclass
class Standby:
    sims: dict[str, SimulatedAsteriskServer]
    api: TestClient[Any, Any]
    store: RecordingStore

    def audio(self, asterisk: str, name: str) -> bytes:
        """What that simulated Asterisk serves for its stored recording ``name``."""
        audio: bytes = self.sims[asterisk].core.recording_audio(name)[0]
        return audio

    def stored(self, asterisk: str) -> dict[str, StoredRecording]:
        found: dict[str, StoredRecording] = self.sims[asterisk].core.stored_recordings
        return found


@pytest.fixture
async def standby(database_url: str, db: Database, tmp_path: Path) -> AsyncIterator[Standby]:
    async with AsyncExitStack() as stack:
        sims = {
            name: await stack.enter_async_context(SimulatedAsteriskServer())
            for name in ("ast1", "ast2")
        }
        first = sims["ast1"]
        servers = (
            *(AsteriskServer(n, sim.url, sim.username, sim.password) for n, sim in sims.items()),
            AsteriskServer("ast3", "http://127.0.0.1:9", first.username, first.password),
        )
        settings = Settings(
            database_url=database_url,
            data_dir=tmp_path,
            admin_token=ADMIN_TOKEN,
            ari_username=first.username,
            ari_password=first.password,
            asterisks=servers,
        )
        service = await open_service(settings, database_url, db=db)
        stack.push_async_callback(service.close)
        assert service.engine.gateway is None  # no ARI connection at all
        api = TestClient(TestServer(create_app(service.api), host="127.0.0.1"))
        await stack.enter_async_context(api)
        yield Standby(sims, api, RecordingStore(db))


async def finished_row(
    standby: Standby, asterisk: str | None, *, state: str = "finished"
) -> Recording:
    recording = Recording(
        account_id="acc1",
        owner_type="user",
        owner_id="u1",
        call_id="c1",
        legs=["a", "b"],
        format="wav",
        state=state,
        asterisk=asterisk,
    )
    if state != "recording":
        recording.end(state)
    await standby.store.upsert(recording)
    return recording


def store_on(standby: Standby, asterisk: str, recording: Recording, seconds: float) -> None:
    standby.stored(asterisk)[recording.name] = StoredRecording(
        name=recording.name, format="wav", duration=seconds, muted_seconds=0, heard=frozenset()
    )


async def test_a_recording_of_ast2_is_read_and_deleted_on_ast2(standby: Standby) -> None:
    recording = await finished_row(standby, "ast2")
    store_on(standby, "ast2", recording, 0.7)
    store_on(standby, "ast1", recording, 0.2)  # the same name elsewhere: never served
    expected = standby.audio("ast2", recording.name)
    assert expected != standby.audio("ast1", recording.name)

    view = await (await standby.api.get(f"{BASE}/{recording.id}", headers=ADMIN)).json()
    assert view["data"]["asterisk"] == "ast2"
    response = await standby.api.get(f"{BASE}/{recording.id}/file", headers=ADMIN)
    assert response.status == 200
    assert response.headers["Content-Type"] == "audio/wav"
    assert await response.read() == expected

    response = await standby.api.delete(f"{BASE}/{recording.id}", headers=ADMIN)
    assert response.status == 200
    assert recording.name not in standby.stored("ast2")
    assert recording.name in standby.stored("ast1")
    assert (await standby.api.get(f"{BASE}/{recording.id}", headers=ADMIN)).status == 404


async def test_rows_without_an_asterisk_use_the_first_server(standby: Standby) -> None:
    recording = await finished_row(standby, None)  # written before migration 0009
    store_on(standby, "ast1", recording, 0.4)
    response = await standby.api.get(f"{BASE}/{recording.id}/file", headers=ADMIN)
    assert response.status == 200
    assert await response.read() == standby.audio("ast1", recording.name)
    response = await standby.api.delete(f"{BASE}/{recording.id}", headers=ADMIN)
    assert response.status == 200
    assert recording.name not in standby.stored("ast1")


async def test_an_asterisk_no_longer_configured_is_503_and_nothing_is_deleted(
    standby: Standby,
) -> None:
    recording = await finished_row(standby, "gone9")
    for name in ("ast1", "ast2"):
        store_on(standby, name, recording, 0.3)
    for method in ("GET", "DELETE"):
        path = f"{BASE}/{recording.id}" + ("/file" if method == "GET" else "")
        response = await standby.api.request(method, path, headers=ADMIN)
        assert response.status == 503
        body = await response.json()
        assert body["message"] == "asterisk_unreachable"
        assert "gone9" in body["data"]["message"]
    assert all(recording.name in standby.stored(name) for name in ("ast1", "ast2"))
    assert (await standby.api.get(f"{BASE}/{recording.id}", headers=ADMIN)).status == 200


async def test_an_unreachable_asterisk_is_503_and_keeps_the_row(standby: Standby) -> None:
    recording = await finished_row(standby, "ast3")
    assert (await standby.api.get(f"{BASE}/{recording.id}/file", headers=ADMIN)).status == 503
    assert (await standby.api.delete(f"{BASE}/{recording.id}", headers=ADMIN)).status == 503
    assert (await standby.api.get(f"{BASE}/{recording.id}", headers=ADMIN)).status == 200


async def test_missing_on_its_own_server_is_404_and_live_is_409(standby: Standby) -> None:
    recording = await finished_row(standby, "ast2")
    store_on(standby, "ast1", recording, 0.3)  # not where it was recorded
    response = await standby.api.get(f"{BASE}/{recording.id}/file", headers=ADMIN)
    assert response.status == 404
    assert "no stored audio" in (await response.json())["data"]["message"]
    # Deleting a file Asterisk no longer has still removes the row.
    assert (await standby.api.delete(f"{BASE}/{recording.id}", headers=ADMIN)).status == 200
    assert recording.name in standby.stored("ast1")

    live = await finished_row(standby, "ast2", state="recording")
    store_on(standby, "ast2", live, 0.3)
    assert (await standby.api.get(f"{BASE}/{live.id}/file", headers=ADMIN)).status == 409
    assert (await standby.api.delete(f"{BASE}/{live.id}", headers=ADMIN)).status == 409
    assert live.name in standby.stored("ast2")


async def test_a_call_recording_row_names_the_engine_asterisk(
    service: Service, db: Database
) -> None:
    await service.document(
        Owner.user(ACCOUNT, "u-alice"),
        numbers={"8": {"module": "record_call", "data": {"action": "start"}}},
    )
    alice, _bob = await connected_call(service)
    call = next(iter(service.engine.calls.values()))
    await alice.press("*8", FAST)
    await wait_until(lambda: current_recording(call) is not None)
    assert await service.journal.flush(timeout=5)
    (row,) = (await RecordingStore(db).page(ACCOUNT)).recordings
    assert row.asterisk == service.engine.asterisk
