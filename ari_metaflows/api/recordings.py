"""``/v2/accounts/{A}/recordings``: recording rows, their audio, and deleting both."""

from __future__ import annotations

import contextlib

import aiohttp
from aiohttp import web

from ..ari.gateway import AriError, AriGateway, AriUnavailable, Gone
from ..errors import AsteriskUnavailable, Conflict, DatastoreUnavailable, NotFound
from ..recordings import RecordingStore
from ..recordings.model import Recording, content_type
from ..recordings.store import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from .context import CONTEXT
from .envelope import paging, respond
from .requests import page_size, path_id, principal_for, query_id

_CHUNK = 64 * 1024


def _store(request: web.Request) -> RecordingStore:
    store = request.app[CONTEXT].recordings
    if store is None:
        raise DatastoreUnavailable("recordings are not configured")
    return store


def _gateway(request: web.Request) -> AriGateway:
    engine = request.app[CONTEXT].engine
    gateway = getattr(engine, "gateway", None)
    if gateway is None:
        raise AsteriskUnavailable("not connected to Asterisk")
    assert isinstance(gateway, AriGateway)
    return gateway


def _stored_file(
    request: web.Request, recording: Recording
) -> contextlib.AbstractAsyncContextManager[aiohttp.ClientResponse]:
    """From the Asterisk whose call made the recording, held here or not (SPEC §8a)."""
    stored = request.app[CONTEXT].stored
    if stored is None:
        return _gateway(request).stored_recording_file(recording.name)
    return stored.on(recording.asterisk).file(recording.name)


async def _delete_stored(request: web.Request, recording: Recording) -> None:
    stored = request.app[CONTEXT].stored
    if stored is None:
        await _gateway(request).delete_stored_recording(recording.name)
    else:
        await stored.on(recording.asterisk).delete(recording.name)


async def list_recordings(request: web.Request) -> web.Response:
    """Newest first; filters ``owner_id`` and ``call_id``; Kazoo paging with ``start_key``."""
    account_id = path_id(request, "account_id")
    await principal_for(request, account_id)
    size = page_size(request, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    start_key = request.query.get("start_key")
    page = await _store(request).page(
        account_id,
        owner_id=query_id(request, "owner_id"),
        call_id=query_id(request, "call_id"),
        page_size=size,
        start_key=start_key,
    )
    return respond(
        request,
        [r.to_api() for r in page.recordings],
        paging=paging(len(page.recordings), start_key, page.next_start_key),
    )


async def get_recording(request: web.Request) -> web.Response:
    account_id = path_id(request, "account_id")
    recording_id = path_id(request, "recording_id")
    await principal_for(request, account_id)
    recording = await _store(request).get(account_id, recording_id)
    return respond(request, recording.to_api())


async def get_recording_file(request: web.Request) -> web.StreamResponse:
    """The audio, streamed from Asterisk's stored recording as it arrives."""
    account_id = path_id(request, "account_id")
    recording_id = path_id(request, "recording_id")
    await principal_for(request, account_id)
    recording = await _store(request).get(account_id, recording_id)
    if recording.live:
        raise Conflict("the recording is still going on; its file is not complete yet")
    try:
        async with _stored_file(request, recording) as upstream:
            response = web.StreamResponse(
                headers={
                    "Content-Type": content_type(recording.format),
                    "Content-Disposition": (
                        f'attachment; filename="{recording.id}.{recording.format}"'
                    ),
                }
            )
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(_CHUNK):
                await response.write(chunk)
            await response.write_eof()
            return response
    except Gone:
        raise NotFound("Asterisk has no stored audio for this recording") from None
    except AriUnavailable as exc:
        raise AsteriskUnavailable(str(exc)) from exc
    except AriError as exc:
        raise AsteriskUnavailable(f"Asterisk refused the file: {exc.message}") from exc


async def delete_recording(request: web.Request) -> web.Response:
    """Deletes the stored audio in Asterisk, then the row (the row stays if Asterisk is down)."""
    account_id = path_id(request, "account_id")
    recording_id = path_id(request, "recording_id")
    await principal_for(request, account_id)
    store = _store(request)
    recording = await store.get(account_id, recording_id)
    if recording.live:
        raise Conflict("the recording is still going on; stop it before deleting it")
    try:
        await _delete_stored(request, recording)
    except Gone:
        pass  # never stored (failed) or already deleted
    except AriUnavailable as exc:
        raise AsteriskUnavailable(str(exc)) from exc
    except AriError as exc:
        raise AsteriskUnavailable(f"Asterisk refused to delete the file: {exc.message}") from exc
    journal = request.app[CONTEXT].journal
    if journal is not None:
        journal.forget(recording.id)
    await store.delete(account_id, recording_id)
    return respond(request, recording.to_api())


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/accounts/{account_id}/recordings", list_recordings)
    resource = router.add_resource("/v2/accounts/{account_id}/recordings/{recording_id}")
    resource.add_route("GET", get_recording)
    resource.add_route("DELETE", delete_recording)
    router.add_get("/v2/accounts/{account_id}/recordings/{recording_id}/file", get_recording_file)
