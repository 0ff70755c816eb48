"""The benchmark of SPEC §8: ``./dev bench`` (``--quick`` for a smaller run, ``--json FILE``).

Layout on this 2-core machine: this process runs the service under test (call engine, ARI
client, REST API) pinned to CPU 0, so every figure is "one core". The simulated Asterisk runs
in a subprocess pinned to CPU 1, and so does the API load generator. The raw baseline runs in
a subprocess pinned to CPU 0 while the service idles. PostgreSQL (embedded, started in a
temporary directory) is left to the scheduler.

Phases: call set-up at N calls; dispatch latency of ``*9`` pressed by every caller; a DTMF
storm through the whole pipeline and the same storm through a bare websocket client (the
baseline); growth to the leg target with memory per idle leg and another storm; then API
throughput for metaflow GET and POST.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ari_metaflows.app import Service, open_service, tune_garbage_collector
from ari_metaflows.config import ListenAddress, Settings
from ari_metaflows.db.embedded import embedded_postgres
from ari_metaflows.metaflows.documents import MAX_DIGITS, validate_document
from ari_metaflows.metaflows.store import Owner
from ari_metaflows.metrics import DISPATCH_BUCKETS, Histogram
from ari_metaflows.testing.eventually import eventually

from .asterisk import ACCOUNT, PASSWORD, USERNAME

ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
SERVICE_CPU, LOAD_CPU = 0, 1
APP = "metaflows"
RAW_APP = "bench-raw"
# The storm presses "*1345678#0" over and over (bench/asterisk.py). With the bench document,
# "*" starts a code attempt that is given up as too long at its 33rd digit (MAX_DIGITS 32) and
# relayed with its "*", then plain digits are relayed as they come until the next "*": every
# 40 digits, nothing is held (the document's long digit timeout keeps a slow storm from ending
# an attempt early, which would shift the cycle).
STORM_DIGITS = "*1345678#0"
STORM_CYCLE = -(-(MAX_DIGITS + 2) // len(STORM_DIGITS)) * len(STORM_DIGITS)
STORM_DIGIT_TIMEOUT_MS = 30_000

TARGETS = {
    "legs": 10_000,
    "bytes_per_idle_leg": 16 * 1024,
    "pipeline_events_per_s": 25_000,
    "pipeline_vs_baseline": 0.1,
    "dispatch_p99_ms": 2.0,
    "relay_p99_ms": 5.0,
    "setups_per_s": 200,
    "metaflow_gets_per_s": 4_000,
}


class SampledHistogram(Histogram):
    """The dispatch histogram, keeping every sample for exact percentiles."""

    def __init__(self) -> None:
        super().__init__(DISPATCH_BUCKETS)
        self.values: list[float] = []

    def observe(self, value: float) -> None:
        super().observe(value)
        self.values.append(value)


@dataclass
class Results:
    figures: dict[str, Any] = field(default_factory=dict)

    def put(self, key: str, value: Any) -> None:
        self.figures[key] = value
        if isinstance(value, float):
            shown = f"{value:,.3f}"
        elif isinstance(value, int):
            shown = f"{value:,}"
        else:
            shown = str(value)
        print(f"  {key:<40} {shown}", flush=True)


class GcClock:
    """Time spent in Python's cyclic garbage collector, by generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.runs = [0, 0, 0]
        self.longest = [0.0, 0.0, 0.0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            pause = time.perf_counter() - self._started
            self.seconds[generation] += pause
            self.runs[generation] += 1
            self.longest[generation] = max(self.longest[generation], pause)

    def snapshot(self) -> tuple[list[float], list[int]]:
        return list(self.seconds), list(self.runs)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(0, {cpu})


@contextlib.contextmanager
def pinned_children(cpu: int) -> Iterator[None]:
    """Processes started inside run on ``cpu``: they inherit the starting thread's affinity,
    and the database must not share the service's core (in production it has a machine of
    its own; on the service's core every query's wake-up preempts the service)."""
    if not hasattr(os, "sched_getaffinity") or (os.cpu_count() or 1) <= cpu:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    await eventually(predicate, timeout=timeout, interval=0.002, what=what)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.results = Results()
        self.sim_port = free_port()
        self.api_port = free_port()
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"
        self.sim_process: subprocess.Popen[bytes] | None = None
        self.service: Service | None = None
        self.http: aiohttp.ClientSession | None = None
        self.gc_clock = GcClock()
        self.database = contextlib.ExitStack()

    # -- set-up ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.sim_process = subprocess.Popen(  # noqa: ASYNC220 (started once, before timing)
            [
                sys.executable,
                *("-m", "bench.asterisk", "--port", str(self.sim_port), "--app", APP),
                *("--cpu", str(LOAD_CPU)),
            ],
            stdout=subprocess.PIPE,
        )
        assert self.sim_process.stdout is not None
        line = await asyncio.to_thread(self.sim_process.stdout.readline)
        if line.strip() != b"ready":
            raise RuntimeError("the simulated Asterisk did not start")
        with pinned_children(LOAD_CPU):
            database_url = self.database.enter_context(
                embedded_postgres(self.workdir, delete_on_exit=True)
            )
        settings = Settings(
            ari_url=self.sim_url,
            ari_username=USERNAME,
            ari_password=PASSWORD,
            ari_app=APP,
            database_url=database_url,
            data_dir=self.workdir,
            api_listen=ListenAddress("127.0.0.1", self.api_port),
            admin_token=ADMIN_TOKEN,
            log_level="WARNING",
        )
        # The service's one lifecycle: what serve starts, undone in reverse by service.close().
        self.service = await open_service(settings, database_url)
        await self.service.start_api(settings.api_listen)
        self.service.start_ari()
        await asyncio.wait_for(self.service.ari.connected.wait(), 10)
        await self.service.store.put(
            Owner.account(ACCOUNT),
            validate_document(
                {
                    "binding_digit": "*",
                    "numbers": {"9": {"module": "play", "data": {"id": "beep"}}},
                    "patterns": {"2(\\d+)": {"module": "transfer"}},
                    "digit_timeout": STORM_DIGIT_TIMEOUT_MS,
                    # Relaying on (the default) unless asked: SPEC §5.6.
                    "dtmf_passthrough": self.args.dtmf_passthrough,
                }
            ),
        )
        self.http = aiohttp.ClientSession(
            headers={"Authorization": aiohttp.encode_basic_auth(USERNAME, PASSWORD)},
            timeout=aiohttp.ClientTimeout(total=600),
        )

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
        try:
            if self.service is not None:
                await self.service.close()
        finally:
            self.database.close()  # the embedded PostgreSQL
            if self.sim_process is not None:
                self.sim_process.terminate()
                self.sim_process.wait(5)

    async def sim(self, path: str, **query: object) -> dict[str, Any]:
        assert self.http is not None
        params = {k: str(v) for k, v in query.items()}
        async with self.http.post(self.sim_url + path, params=params) as response:
            response.raise_for_status()
            result: dict[str, Any] = await response.json()
            return result

    @property
    def engine(self) -> Any:
        assert self.service is not None
        return self.service.engine

    def connected(self) -> int:
        return sum(1 for call in self.engine.calls.values() if call.phase == "connected")

    # -- phases ----------------------------------------------------------------------------

    async def setups(self, count: int, first: int, label: str) -> None:
        target = self.connected() + count
        started = time.perf_counter()
        await self.sim("/bench/calls", n=count, start=first)
        await wait_for(lambda: self.connected() >= target, 300, f"{target} connected calls")
        elapsed = time.perf_counter() - started
        if label:
            self.results.put(f"call set-ups/s ({label})", count / elapsed)

    async def dispatch_latency(self) -> None:
        assert self.service is not None
        histogram = SampledHistogram()
        self.service.metrics.dispatch = histogram
        callers = self.connected()
        await self.sim("/bench/press", digits="*9", rate=self.args.press_rate)
        await wait_for(lambda: len(histogram.values) >= callers, 120, "every *9 dispatched")
        values_ms = [v * 1000 for v in histogram.values]
        self.results.put(f"dispatch p50 ms ({callers} calls)", statistics.median(values_ms))
        self.results.put(f"dispatch p99 ms ({callers} calls)", percentile(values_ms, 0.99))
        self.results.put(f"dispatch max ms ({callers} calls)", max(values_ms))
        await asyncio.sleep(1.0)  # the beeps finish
        assert self.http is not None
        async with self.http.get(self.sim_url + "/bench/press_latencies") as response:
            seen = await response.json()
        wire_ms = [v * 1000 for v in seen["seconds"]]
        label = f"({callers} calls, Asterisk's view)"
        self.results.put(
            f"DTMF event → first ARI request p50 ms {label}", statistics.median(wire_ms)
        )
        self.results.put(
            f"DTMF event → first ARI request p99 ms {label}", percentile(wire_ms, 0.99)
        )
        self.results.put(f"DTMF event → first ARI request max ms {label}", max(wire_ms))

    async def relay_latency(self) -> None:
        """Every caller presses ``1`` (no code starts with it): the digit is absorbed by the
        bridge and relayed to the callee. Timed from the moment the call decides to relay it
        (its event handled) to the request leaving, and from Asterisk's side."""
        assert self.service is not None
        histogram = SampledHistogram()
        self.service.metrics.relay = histogram
        callers = self.connected()
        await self.sim("/bench/press", digits="1", rate=self.args.press_rate)
        await wait_for(lambda: len(histogram.values) >= callers, 120, "every digit relayed")
        values_ms = [v * 1000 for v in histogram.values]
        self.results.put(f"relay p50 ms ({callers} calls)", statistics.median(values_ms))
        self.results.put(f"relay p99 ms ({callers} calls)", percentile(values_ms, 0.99))
        self.results.put(f"relay max ms ({callers} calls)", max(values_ms))
        await self.relays_drained()
        assert self.http is not None
        async with self.http.get(self.sim_url + "/bench/press_latencies") as response:
            seen = await response.json()
        wire_ms = [v * 1000 for v in seen["seconds"]]
        label = f"({callers} calls, Asterisk's view)"
        self.results.put(f"DTMF event → relay request p50 ms {label}", statistics.median(wire_ms))
        self.results.put(f"DTMF event → relay request p99 ms {label}", percentile(wire_ms, 0.99))
        self.results.put(f"DTMF event → relay request max ms {label}", max(wire_ms))

    async def relays_drained(self) -> None:
        """No relay queued or in flight in any call (the storm leaves many behind)."""
        await wait_for(
            lambda: all(c.relay is None or c.relay.idle for c in self.engine.calls.values()),
            300,
            "the relays drained",
        )

    def storm_rounds(self, legs: int) -> int:
        """Digits per leg: about ``--storm-events`` in all, in whole cycles of the storm's
        digits, so that no leg is left holding a code attempt when the storm ends (its digits
        would be relayed when the attempt times out, inside the measured window or not,
        depending on how fast the run went) and every storm does the same work per event."""
        events: int = self.args.storm_events
        return max(STORM_CYCLE, events // legs // STORM_CYCLE * STORM_CYCLE)

    async def storm(self, legs: int, label: str) -> float:
        assert self.service is not None
        metrics = self.service.metrics
        rounds = self.storm_rounds(legs)
        expected = rounds * legs
        self.results.put(f"storm DTMF events ({label})", expected)
        routed = metrics.dtmf_events
        base = metrics.dtmf_handled
        relayed, relay_requests = metrics.relay.samples, metrics.relay_requests
        request = asyncio.create_task(self.sim("/bench/storm", rounds=rounds, digits=STORM_DIGITS))
        # The clock starts at the first event: the simulator encodes its frames first.
        await wait_for(lambda: metrics.dtmf_events > routed, 60, "the storm's first event")
        cpu = time.process_time()
        started = time.perf_counter()
        gc_before, runs_before = self.gc_clock.snapshot()
        self.gc_clock.longest = [0.0, 0.0, 0.0]
        await wait_for(lambda: metrics.dtmf_handled - base >= expected, 300, "the storm")
        elapsed = time.perf_counter() - started
        cpu_used = time.process_time() - cpu
        gc_after, runs_after = self.gc_clock.snapshot()
        await request
        # Relaying is on (the default, SPEC §5.6): the callers' digits are absorbed and what
        # is not a code (every 33-digit run is too long) is replayed to the callees.
        await self.relays_drained()
        self.results.put(f"pipeline relayed digits ({label})", metrics.relay.samples - relayed)
        self.results.put(
            f"pipeline relay requests ({label})", metrics.relay_requests - relay_requests
        )
        rate: float = expected / elapsed
        self.results.put(f"pipeline DTMF events/s ({label})", rate)
        self.results.put(f"pipeline CPU ms per 1,000 events ({label})", cpu_used / expected * 1e6)
        gc_seconds = [a - b for a, b in zip(gc_after, gc_before, strict=True)]
        self.results.put(f"pipeline GC share of CPU ({label})", sum(gc_seconds) / cpu_used)
        self.results.put(
            f"pipeline GC runs gen0/1/2 ({label})",
            "/".join(str(a - b) for a, b in zip(runs_after, runs_before, strict=True)),
        )
        self.results.put(
            f"pipeline GC ms gen0/1/2 ({label})",
            "/".join(f"{x * 1000:.0f}" for x in gc_seconds),
        )
        self.results.put(
            f"pipeline GC longest pause ms gen0/1/2 ({label})",
            "/".join(f"{x * 1000:.1f}" for x in self.gc_clock.longest),
        )
        await asyncio.sleep(1.0)  # the audit trail drains
        return rate

    async def baseline(self, legs: int) -> float:
        """The same storm read by a bare websocket client (bench/baseline.py), on the service's
        core while the service idles (the storm goes to another application)."""
        rounds = self.storm_rounds(legs)
        channels = self.workdir / "baseline-channels.txt"
        channels.write_text("\n".join(self.engine._by_channel) + "\n")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "bench.baseline", "--url", self.sim_url + "/ari/events", "--app", RAW_APP),
            *("--auth", aiohttp.encode_basic_auth(USERNAME, PASSWORD)),
            *("--channels", str(channels), "--expected", str(rounds * legs)),
            *("--cpu", str(SERVICE_CPU)),
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        if (await process.stdout.readline()).strip() != b"ready":
            raise RuntimeError("the baseline client did not start")
        await self.sim("/bench/storm", rounds=rounds, digits=STORM_DIGITS, app=RAW_APP)
        output, _ = await asyncio.wait_for(process.communicate(), 300)
        figures = json.loads(output)
        rate: float = figures["events_per_s"]
        self.results.put(f"baseline DTMF events/s ({legs} legs)", rate)
        self.results.put(
            f"baseline CPU ms per 1,000 events ({legs} legs)", figures["cpu_ms_per_1000"]
        )
        return rate

    async def memory(self, calls: int, first: int) -> None:
        """RSS growth per leg while adding calls in batches (a burst's transient buffers
        would otherwise count as per-leg memory)."""
        gc.collect()
        before, blocks_before = rss_bytes(), sys.getallocatedblocks()
        batch = self.args.batch
        started = time.perf_counter()
        for offset in range(0, calls, batch):
            await self.setups(min(batch, calls - offset), first + offset, "")
        self.results.figures.pop("call set-ups/s ()", None)
        self.results.put(
            f"call set-ups/s ({calls} more calls, batches of {batch})",
            calls / (time.perf_counter() - started),
        )
        await asyncio.sleep(1.0)
        gc.collect()
        after, blocks_after = rss_bytes(), sys.getallocatedblocks()
        legs = 2 * calls
        self.results.put("tracked legs", self.engine.active_legs())
        self.results.put("RSS bytes per idle leg", (after - before) / legs)
        # Live Python objects per leg: unlike RSS, not shaped by allocator fragmentation.
        self.results.put("Python memory blocks per idle leg", (blocks_after - blocks_before) / legs)

    async def teardown(self) -> None:
        started = time.perf_counter()
        await self.sim("/bench/hangup")
        await wait_for(lambda: not self.engine.calls, 300, "every call ended")
        self.results.put("hang-ups: seconds for all calls", time.perf_counter() - started)

    async def api(self) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.api_load",
            "--url",
            f"http://127.0.0.1:{self.api_port}",
            "--token",
            ADMIN_TOKEN,
            "--account",
            ACCOUNT,
            "--seconds",
            str(self.args.api_seconds),
            "--cpu",
            str(LOAD_CPU),
            stdout=asyncio.subprocess.PIPE,
        )
        output, _ = await process.communicate()
        for key, value in json.loads(output).items():
            self.results.put(key, value)

    async def run(self) -> None:
        calls = self.args.calls
        print(f"== set-up of {calls} calls", flush=True)
        await self.setups(calls, 0, f"{calls} calls")
        print("== dispatch: every caller presses *9", flush=True)
        await self.dispatch_latency()
        if not self.args.dtmf_passthrough:
            print("== relay: every caller presses 1 (relayed to the callee)", flush=True)
            await self.relay_latency()
        print(f"== DTMF storm over {2 * calls} legs", flush=True)
        pipeline = await self.storm(2 * calls, f"{2 * calls} legs")
        baseline = await self.baseline(2 * calls)
        self.results.put(f"pipeline / baseline ({2 * calls} legs)", pipeline / baseline)
        more = self.args.legs // 2 - calls
        if more > 0:
            print(f"== growing to {self.args.legs} legs", flush=True)
            await self.memory(more, calls)
            print(f"== DTMF storm over {self.args.legs} legs", flush=True)
            await self.storm(self.args.legs, f"{self.args.legs} legs")
        print("== hang-up of every call", flush=True)
        await self.teardown()
        print("== REST API (metaflows)", flush=True)
        await self.api()


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next(
            (ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), ""
        )
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


async def main() -> int:
    if "--real" in sys.argv[1:]:  # against a real Asterisk with sipp (bench/real.py)
        from .real import main as real_main

        return await real_main(sys.argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls for set-up, dispatch, storm")
    parser.add_argument("--legs", type=int, default=10_000, help="legs to grow to")
    parser.add_argument(
        "--storm-events", type=int, default=400_000, help="DTMF events per storm, about"
    )
    parser.add_argument("--press-rate", type=float, default=500.0, help="*9 codes per second")
    parser.add_argument("--api-seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=500, help="calls per batch when growing")
    parser.add_argument("--quick", action="store_true", help="200 calls, 1,000 legs, small storms")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--dtmf-passthrough",
        action="store_true",
        help="the bench document sets dtmf_passthrough (no hold-back, no relay), for comparison",
    )
    parser.add_argument(
        "--python-gc",
        action="store_true",
        help="keep Python's default GC thresholds (the service tunes them at start)",
    )
    args = parser.parse_args()
    if args.quick:
        args.calls, args.legs, args.storm_events, args.api_seconds = 200, 1000, 50_000, 2.0
    pin(SERVICE_CPU)
    if not args.python_gc:
        tune_garbage_collector()  # as ``serve`` does
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    info = machine() | {"gc_thresholds": gc.get_threshold()}
    print(f"machine: {info}", flush=True)
    with tempfile.TemporaryDirectory(prefix="metaflows-bench-") as workdir:
        bench = Bench(args, Path(workdir))
        try:
            await bench.start()
            await bench.run()
        finally:
            await bench.stop()
    figures = bench.results.figures
    print("\ntargets (SPEC §8):")
    for name, target in TARGETS.items():
        print(f"  {name:<40} {target:,}")
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": info, "figures": figures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
