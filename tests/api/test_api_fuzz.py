"""Schemathesis against ``/openapi.json`` of the running service (issue 8): whatever it
generates from the documented schema (and what the schema rules out), the API answers without
a 5xx, with a documented status and content type, and in the documented envelope."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from ari_metaflows.auth.tokens import TokenStore
from ari_metaflows.db.database import Database
from ari_metaflows.metaflows.store import Owner

from ..helpers.engine_service import ACCOUNT, ADMIN_TOKEN, Service, api_client, connected_call

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


@pytest.mark.timeout(120)
async def test_schemathesis_finds_no_server_error_and_only_documented_answers(
    sim_service: Service, tokens: TokenStore, db: Database, tmp_path: Path
) -> None:
    await sim_service.document(
        Owner.account(ACCOUNT), numbers={"9": {"module": "play", "data": {"id": "beep"}}}
    )
    await connected_call(sim_service)  # live channels for the channels API to find
    async with api_client(sim_service, tokens, db) as client:
        base = str(client.make_url("")).rstrip("/")
        process = await asyncio.create_subprocess_exec(
            Path(sys.executable).with_name("st"),
            "run",
            f"{base}/openapi.json",
            "--url",
            base,
            "--checks",
            CHECKS,
            "--header",
            f"X-Auth-Token: {ADMIN_TOKEN}",
            "--max-examples",
            os.environ.get("METAFLOWS_FUZZ_EXAMPLES", "8"),
            "--seed",
            os.environ.get("METAFLOWS_FUZZ_SEED", "20261124"),
            "--max-time",
            os.environ.get("METAFLOWS_FUZZ_SECONDS", "40"),
            "--request-timeout",
            "10",
            "--no-color",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
        )
        output, _ = await process.communicate()
    report = output.decode(errors="replace")
    print(report[-2500:])
    assert process.returncode == 0, report[-6000:]
    assert "No issues found" in report or "passed" in report, report[-3000:]
