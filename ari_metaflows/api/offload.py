"""Big request bodies are parsed and validated in a worker process, not on the event loop.

A body up to ``INLINE_BODY_BYTES`` costs a few ms to parse, check and validate here; one near
the 256 KiB limit can cost a few hundred (the validator is Python). Those go to one spawned
worker process; only the verdict (a plain value, or the error to raise) comes back.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from ..errors import InvalidRequest, ValidationFailed
from ..metaflows.documents import use_modules, validation_specs

INLINE_BODY_BYTES = 4 * 1024
WORKER_TIMEOUT_S = 10.0


def parse_in_worker(raw: bytes, document: bool) -> tuple[str, Any]:
    """Runs in the worker: ``("ok", value)``, ``("invalid", text)`` or ``("validation", errors)``.

    ``document``: the body is ``{"data": <metaflow document>}``; answer the validated document.
    """
    from ..metaflows.documents import validate_document
    from .bodies import data_of, parse_json

    try:
        body = parse_json(raw)
        if document:
            return "ok", validate_document(data_of(body))
        return "ok", body
    except ValidationFailed as error:
        return "validation", error.errors
    except InvalidRequest as error:
        return "invalid", error.detail


def outcome(result: tuple[str, Any]) -> Any:
    kind, value = result
    if kind == "validation":
        raise ValidationFailed(value)
    if kind == "invalid":
        raise InvalidRequest(value)
    return value


class Offloader:
    """One lazily spawned worker process; ``close`` (app cleanup) stops it."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    async def parse(self, raw: bytes, *, document: bool) -> Any:
        if self._pool is None:
            # The worker validates with the modules this service was wired with.
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=use_modules,
                initargs=(validation_specs(),),
            )
        future = asyncio.get_running_loop().run_in_executor(
            self._pool, parse_in_worker, raw, document
        )
        return outcome(await asyncio.wait_for(future, WORKER_TIMEOUT_S))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
