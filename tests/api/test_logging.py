"""One timestamp format, JSON log lines, an access log line per request (issue 17 item 7)."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ari_metaflows.api.parking import _parked
from ari_metaflows.audit.model import MetaflowEvent
from ari_metaflows.config import ConfigError, load_settings
from ari_metaflows.logs import JsonFormatter, TextFormatter
from ari_metaflows.recordings.model import Recording
from ari_metaflows.timefmt import iso_utc

from ..conftest import ADMIN_TOKEN
from ..service.test_cli import cli_env, run_cli

Client = TestClient[Any, Any]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_one_timestamp_format_for_every_kind_of_moment() -> None:
    assert iso_utc(datetime(2026, 11, 30, 4, 5, 6, 123456, UTC)) == "2026-11-30T04:05:06.123Z"
    assert iso_utc(datetime(2026, 11, 30, 4, 5, 6)) == "2026-11-30T04:05:06.000Z"  # naive = UTC
    plus_two = datetime(2026, 11, 30, 6, 5, 6, tzinfo=timezone(timedelta(hours=2)))
    assert iso_utc(plus_two) == "2026-11-30T04:05:06.000Z"
    assert iso_utc(1796011506.5) == "2026-11-30T04:05:06.500Z"
    assert ISO.match(iso_utc())


def test_answers_use_it_for_events_recordings_and_parked_calls() -> None:
    event = MetaflowEvent(account_id="a", call_id="c", leg="caller", trigger="dtmf", outcome="ok")
    assert ISO.match(event.to_api()["timestamp"])
    recording = Recording("a", "account", "a", "c", ["l1"], "wav")
    recording.ended_at = recording.started_at
    api = recording.to_api()
    assert ISO.match(api["started_at"])
    assert ISO.match(api["ended_at"])
    parked = _parked({"slot": "701", "parked_at": 1796011506.25})
    assert parked["parked_at"] == "2026-11-30T04:05:06.250Z"


async def test_envelope_timestamps_use_it(client: Client) -> None:
    for headers in ({"X-Auth-Token": ADMIN_TOKEN}, {}):
        response = await client.get("/v2/accounts/acc1/metaflows", headers=headers)
        assert ISO.match((await response.json())["timestamp"])


def _record(**extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(
        "ari_metaflows.x", logging.INFO, __file__, 1, "hello %s", ("w",), None
    )
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_level_logger_message_and_extra_fields() -> None:
    line = JsonFormatter().format(_record(request_id="r1", http_status=200, odd=object()))
    entry = json.loads(line)
    assert entry["message"] == "hello w"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "ari_metaflows.x"
    assert ISO.match(entry["timestamp"])
    assert entry["request_id"] == "r1"
    assert entry["http_status"] == 200
    assert isinstance(entry["odd"], str)
    assert "\n" not in line


def test_json_lines_keep_an_exception_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record()
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_text_lines_use_the_same_timestamps() -> None:
    line = TextFormatter("%(asctime)s %(message)s").format(_record())
    assert ISO.match(line.split(" ")[0])


def test_log_format_setting() -> None:
    assert load_settings({}).log_format == "text"
    assert load_settings({"METAFLOWS_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError, match="METAFLOWS_LOG_FORMAT"):
        load_settings({"METAFLOWS_LOG_FORMAT": "xml"})


async def test_the_cli_writes_json_lines(database_url: str) -> None:
    env = cli_env(
        METAFLOWS_DATABASE_URL=database_url,
        METAFLOWS_LOG_FORMAT="json",
        METAFLOWS_LOG_LEVEL="DEBUG",
    )
    code, _, err = await run_cli("migrate", env=env)
    assert code == 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "expected at least one debug line"
    for line in lines:
        entry = json.loads(line)
        assert ISO.match(entry["timestamp"])


async def test_one_access_line_per_request_without_secrets(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ari_metaflows.access")
    handler_stream = io.StringIO()
    handler = logging.StreamHandler(handler_stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("ari_metaflows.access")
    access.addHandler(handler)
    try:
        await client.get(
            "/v2/accounts/acc1/metaflows",
            params={"auth_token": ADMIN_TOKEN, "x": "1"},
            headers={"X-Request-ID": "req-42"},
        )
        await client.get("/v2/nowhere", headers={"X-Auth-Token": ADMIN_TOKEN})
        await client.options("/v2/api_auth", headers={"Origin": "http://ui.example"})
    finally:
        access.removeHandler(handler)
    entries = [json.loads(line) for line in handler_stream.getvalue().splitlines()]
    assert len(entries) == 3
    first, second, preflight = entries
    assert (preflight["http_method"], preflight["http_status"]) == ("OPTIONS", 204)
    assert preflight["request_id"]
    assert first["http_method"] == "GET"
    assert first["http_path"] == "/v2/accounts/acc1/metaflows?auth_token=***&x=1"
    assert first["http_status"] == 200
    assert first["request_id"] == "req-42"
    assert isinstance(first["duration_ms"], float)
    assert second["http_status"] == 404
    assert second["http_path"] == "/v2/nowhere"
    assert ADMIN_TOKEN not in handler_stream.getvalue()
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("ari_metaflows")]
    assert len(ours) == 3
    assert all(ADMIN_TOKEN not in message for message in ours)  # text lines too
