"""/metrics, the audit trail and ``GET /v2/accounts/{A}/metaflow_events`` (issue 8).

Scenario tests drive real codes through the simulator (or a real Asterisk); trail and API tests
use the real PostgreSQL, and a TCP proxy to take it away.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ari_metaflows.audit import AuditTrail, EventStore, MetaflowEvent
from ari_metaflows.audit.trail import TrailLimits
from ari_metaflows.auth.tokens import TokenStore
from ari_metaflows.backoff import Backoff
from ari_metaflows.db.database import Database, DatabaseTimeouts
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.metrics import Metrics

from ..helpers.engine_service import (
    ACCOUNT,
    ADMIN,
    FAST,
    Service,
    api_client,
    connected_call,
    wait_until,
)
from ..helpers.tcp_proxy import TcpProxy


def _samples(text: str) -> dict[str, float]:
    """Parse the exposition format strictly enough to catch a malformed line."""
    found: dict[str, float] = {}
    families: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert kind in {"counter", "gauge", "histogram"}
            families.add(name)
            continue
        if line.startswith("# HELP ") or not line:
            continue
        match = re.fullmatch(
            r'([a-z_]+)(\{[a-z_]+="(?:[^"\\]|\\.)*"(?:,[a-z_]+="(?:[^"\\]|\\.)*")*\})? (\S+)', line
        )
        assert match is not None, line
        base = re.sub(r"_(bucket|sum|count)$", "", match[1])
        assert match[1] in families or base in families, f"{line}: no TYPE line"
        found[match[1] + (match[2] or "")] = float(match[3])
    return found


async def _events(client: Any, query: str = "", account: str = ACCOUNT) -> Any:
    response = await client.get(f"/v2/accounts/{account}/metaflow_events{query}", headers=ADMIN)
    body = await response.json()
    assert response.status == 200, body
    return body


# -- codes through the whole pipeline ------------------------------------------------------


async def test_a_code_is_audited_and_counted(
    service: Service, tokens: TokenStore, db: Database
) -> None:
    await service.document(
        Owner.user(ACCOUNT, "u-alice"),
        numbers={"9": {"module": "play", "data": {"id": "beep"}}},
    )
    alice, bob = await connected_call(service)
    await alice.press("*9", FAST)
    await bob.wait_hears("playback", "sound:beep")
    await alice.press("*55", FAST)  # no metaflow: audited as no_match
    await wait_until(lambda: service.audit.stored >= 2)

    async with api_client(service, tokens, db) as client:
        body = await _events(client)
        newest, oldest = body["data"]
        assert body["page_size"] == 2
        call_id = next(iter(service.engine.calls))
        assert oldest["call_id"] == newest["call_id"] == call_id
        assert oldest["trigger"] == "dtmf"
        assert (oldest["leg"], oldest["owner"], oldest["user_id"]) == (
            "caller",
            "caller",
            "u-alice",
        )
        assert (oldest["collected"], oldest["key"], oldest["match"]) == ("9", "9", "number")
        assert (oldest["module"], oldest["outcome"]) == ("play", "ok")
        assert oldest["steps"] == [{"module": "play", "outcome": "ok"}]
        assert 0 <= oldest["dispatch_ms"] <= oldest["duration_ms"]
        assert (newest["collected"], newest["outcome"]) == ("55", "no_match")
        assert "module" not in newest
        assert "dispatch_ms" not in newest

        response = await client.get("/metrics")
        assert response.status == 200
        assert response.content_type == "text/plain"
        samples = _samples(await response.text())
    assert samples["metaflows_dtmf_events_total"] >= 5  # *9 and *55 on Asterisk's side
    assert samples['metaflows_codes_total{module="play",outcome="ok"}'] == 1
    assert samples['metaflows_codes_total{module="none",outcome="no_match"}'] == 1
    assert samples["metaflows_dispatch_seconds_count"] == 1
    assert samples['metaflows_dispatch_seconds_bucket{le="+Inf"}'] == 1
    assert samples["metaflows_active_calls"] == 1
    assert samples["metaflows_active_legs"] == 2
    assert samples["metaflows_ari_connected"] == 1
    assert samples['metaflows_api_requests_total{method="GET",status="200"}'] == 1


async def test_a_failing_flow_is_audited_as_failed(
    service: Service, tokens: TokenStore, db: Database
) -> None:
    await service.document(
        Owner.account(ACCOUNT),
        numbers={"8": {"module": "park", "data": {"slot": "999"}}},  # outside the lot
    )
    alice, _ = await connected_call(service)
    await alice.press("*8", FAST)
    await wait_until(lambda: service.audit.stored >= 1)
    async with api_client(service, tokens, db) as client:
        (event,) = (await _events(client))["data"]
    assert (event["module"], event["outcome"]) == ("park", "failed")
    assert event["owner"] == "caller"
    assert "user_id" in event
    assert service.metrics.codes[("park", "failed")] == 1


async def test_an_api_run_is_audited_with_its_trigger(
    service: Service, tokens: TokenStore, db: Database
) -> None:
    _alice, bob = await connected_call(service)
    async with api_client(service, tokens, db) as client:
        response = await client.get(f"/v2/accounts/{ACCOUNT}/channels", headers=ADMIN)
        (leg,) = [leg for leg in (await response.json())["data"] if leg["role"] == "caller"]
        response = await client.post(
            f"/v2/accounts/{ACCOUNT}/channels/{leg['id']}",
            json={"data": {"action": "play", "id": "beep", "leg": "peer"}},
            headers=ADMIN,
        )
        assert response.status == 202, await response.text()
        await bob.wait_hears("playback", "sound:beep")
        await wait_until(lambda: service.audit.stored >= 1)
        (event,) = (await _events(client, f"?call_id={leg['call_id']}"))["data"]
    assert (event["trigger"], event["module"], event["outcome"]) == ("api", "play", "ok")
    assert "collected" not in event


# -- the events API: filters, paging, bad input ---------------------------------------------


def _event(call: str, when: datetime, **fields: Any) -> MetaflowEvent:
    return MetaflowEvent(
        account_id=fields.pop("account_id", ACCOUNT),
        call_id=call,
        leg="caller",
        trigger="dtmf",
        outcome="ok",
        occurred_at=when,
        module="play",
        **fields,
    )


async def test_events_filter_and_page(client: Any, db: Database) -> None:
    store = EventStore(db)
    start = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    await store.insert(
        [_event(f"c{i % 3}", start + timedelta(minutes=i), user_id=f"u{i % 2}") for i in range(7)]
        + [_event("c0", start, account_id="other")]
    )
    body = await _events(client, "?page_size=3")
    first = [e["timestamp"] for e in body["data"]]
    assert first == sorted(first, reverse=True)
    assert len(first) == 3
    seen = list(first)
    while "next_start_key" in body:
        body = await _events(client, f"?page_size=3&start_key={body['next_start_key']}")
        seen += [e["timestamp"] for e in body["data"]]
    assert len(seen) == len(set(seen)) == 7  # every row once, none of the other account's

    by_call = (await _events(client, "?call_id=c1"))["data"]
    assert {e["call_id"] for e in by_call} == {"c1"}
    assert len(by_call) == 2
    by_owner = (await _events(client, "?owner_id=u1"))["data"]
    assert {e["user_id"] for e in by_owner} == {"u1"}
    assert len(by_owner) == 3
    since = int((start + timedelta(minutes=5)).timestamp())
    assert len((await _events(client, f"?created_from={since}"))["data"]) == 2
    until = (start + timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
    assert len((await _events(client, f"?created_to={until}"))["data"]) == 2


async def test_events_refuse_bad_queries_and_other_accounts(
    client: Any, tokens: TokenStore
) -> None:
    url = f"/v2/accounts/{ACCOUNT}/metaflow_events"
    for query in (
        "?page_size=0",
        "?page_size=x",
        "?start_key=not-ours",
        "?created_from=yesterday",
        "?created_from=2026-11-02T00:00:00Z&created_to=2026-11-01T00:00:00Z",
        "?call_id=" + "x" * 200,
    ):
        response = await client.get(url + query, headers=ADMIN)
        body = await response.json()
        assert response.status == 400, query
        assert body["status"] == "error"
    _, other_token = await tokens.create("other-account")
    response = await client.get(url, headers={"X-Auth-Token": other_token})
    assert response.status == 403
    response = await client.get(url)
    assert response.status == 401


async def test_events_api_answers_503_without_the_database(api_context: Any, client: Any) -> None:
    down = Database("postgresql://nobody@127.0.0.1:9/none", timeouts=DatabaseTimeouts(acquire=1))
    await down.open()
    try:
        api_context.events = EventStore(down)
        response = await client.get(f"/v2/accounts/{ACCOUNT}/metaflow_events", headers=ADMIN)
        body = await response.json()
        assert response.status == 503
        assert body["status"] == "error"
    finally:
        await down.close()


# -- the trail survives a database outage and a restart ----------------------------------------


async def test_the_trail_waits_out_an_outage_and_spills_on_shutdown(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    proxy = TcpProxy.for_url(database_url)
    await proxy.start()
    flaky = Database(proxy.url_for(database_url), timeouts=DatabaseTimeouts(acquire=0.5))
    await flaky.open()
    spill = tmp_path / "audit.pending.jsonl"
    limits = TrailLimits(linger=0.01)
    retry = Backoff(initial=0.02, maximum=0.05)
    trail = AuditTrail(EventStore(flaky), spill, limits, retry)
    await trail.start()
    now = datetime.now(UTC)
    try:
        await proxy.cut()
        for i in range(5):
            trail.record(_event(f"outage{i}", now + timedelta(seconds=i)))
        await wait_until(lambda: trail.failed_attempts >= 2)
        assert trail.pending == 5
        assert trail.stored == 0
        await proxy.restore()
        assert await trail.flush(timeout=5)
        assert trail.pending == 0

        await proxy.cut()
        trail.record(_event("kept", now))
        trail.record(_event("kept", now + timedelta(seconds=1)))
        assert not await trail.flush(timeout=0.2)
        await trail.close()  # the database is still away: the rows go to the spill file
        assert len(spill.read_text().splitlines()) == 2
    finally:
        await trail.close()
        await proxy.close()
        await flaky.close()

    again = AuditTrail(EventStore(db), spill, limits, retry)
    await again.start()
    try:
        assert await again.flush(timeout=5)
    finally:
        await again.close()
    assert not spill.exists()
    async with db.connection() as conn:
        calls = [r["call_id"] for r in await conn.fetch("SELECT call_id FROM metaflow_events")]
    assert sorted(calls) == ["kept", "kept", *(f"outage{i}" for i in range(5))]


async def test_a_full_buffer_drops_the_oldest_and_counts(db: Database, tmp_path: Path) -> None:
    trail = AuditTrail(EventStore(db), tmp_path / "spill", TrailLimits(max_buffered=3))
    now = datetime.now(UTC)
    for i in range(5):  # not started: nothing drains the buffer
        trail.record(_event(f"c{i}", now))
    assert (trail.pending, trail.dropped) == (3, 2)
    await trail.close()
    kept = [json.loads(line)["call_id"] for line in (tmp_path / "spill").read_text().splitlines()]
    assert kept == ["c2", "c3", "c4"]


async def test_an_unreadable_spill_line_is_skipped(db: Database, tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    good = _event("good", datetime.now(UTC)).to_spill()
    spill.write_text("{not json\n" + json.dumps(good) + "\n" + '{"id": "x"}\n')
    trail = AuditTrail(EventStore(db), spill, TrailLimits(linger=0.01))
    await trail.start()
    try:
        assert await trail.flush(timeout=5)
    finally:
        await trail.close()
    assert trail.stored == 1


# -- the exposition format ----------------------------------------------------------------------


def test_metrics_render_cumulative_buckets_and_escaped_labels() -> None:
    metrics = Metrics()
    for value in (0.0001, 0.0015, 0.0015, 2.0):
        metrics.dispatch.observe(value)
    metrics.code('we"ird\\mod', "ok")
    metrics.gauge("metaflows_test_gauge", "a gauge", lambda: 2.5)
    text = metrics.render()
    samples = _samples(text)
    buckets = [v for k, v in samples.items() if k.startswith("metaflows_dispatch_seconds_bucket")]
    assert buckets == sorted(buckets)
    assert buckets[-1] == 4
    assert samples['metaflows_dispatch_seconds_bucket{le="0.002"}'] == 3
    assert samples["metaflows_dispatch_seconds_sum"] == sum((0.0001, 0.0015, 0.0015, 2.0))
    assert 'module="we\\"ird\\\\mod"' in text
    assert samples["metaflows_test_gauge"] == 2.5
