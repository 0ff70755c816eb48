"""The benchmark against a real Asterisk: ``./dev bench --real`` (issue 20).

What a call costs, in CPU seconds of Asterisk and of this service, side by side with what an
Asterisk administrator already has. N concurrent SIP calls from sipp (caller ``bench-uac``) go
through Asterisk to a sipp that answers (``bench-uas``), four times in one run:

* ``native``: ``Dial(PJSIP/bench-uas,30,X)``; the recording run's caller presses ``*9``, Asterisk's
  own one-touch MixMonitor (``automixmon`` in features.conf);
* ``app``: ``Stasis(metaflows,dial,…)`` through this service; ``*9`` is ``record_call``.

A short uncounted phase of each path comes first (the first calls after a start cost more).
Then rounds: in each, a code's two paths run side by side, native first in even rounds and app
first in odd ones, so that the machine's drift weighs on both; the report gives the pooled
ratio and each round's.

Each side plays its own tone and the caller sends ``*9`` as RFC 4733 events in its RTP stream
(bench/media.py). Asterisk's CPU comes from ``/proc/<pid>/stat`` (utime + stime), the service's
from this process (it runs the service, in-process, like ``serve``: the bench itself only waits
for sipp meanwhile). Every app call that pressed ``*9`` must have its recording row and a file
holding both tones.

Needs: an Asterisk with the repo's asterisk-conf (contexts ``metaflows-bench``, endpoints
``bench-uac``/``bench-uas``, features.conf) on this machine, ARI_URL/ARI_USERNAME/ARI_PASSWORD,
and sipp. Without either it says so and exits 0 (skipped).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ari_metaflows.testing.eventually import eventually

from .media import CALLEE_HZ, CALLER_HZ, both_parties, tone_levels, write_pcap

ACCOUNT = "acc-bench"  # set by the bench-uac endpoint (asterisk-conf/pjsip.conf)
APP = "metaflows"  # the app the metaflows-bench context enters (asterisk-conf/extensions.conf)
UAS_PORT = 5092  # bench-uas's contact in asterisk-conf/pjsip.conf (--uas-port)
UAC_PORT = 5094  # (--uac-port)
MEDIA_PORT = 40000  # the caller's first RTP port; the callee's is 100 higher (--media-port)
SCENARIOS = Path(__file__).parent / "sipp"
TARGETS = {"with_recording": 1.2, "without_code": 1.15, "service_share": 0.10}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
QUIET_SHARE = 0.05  # of a CPU: Asterisk is idle below it (it uses ~1 % with no call)


class Skip(Exception):
    """The bench cannot run here (no Asterisk, no sipp): a message, not a failure."""


@dataclass
class Phase:
    path: str  # "native" or "app"
    code: bool  # the caller presses *9
    calls: int = 0
    ok_calls: int = 0
    asterisk_s: float = 0.0
    service_s: float = 0.0
    wall_s: float = 0.0
    events: int = 0  # ARI events the service received
    requests: int = 0  # ARI requests the service made
    # each round's (Asterisk CPU s, service CPU s, ok calls)
    rounds: list[tuple[float, float, int]] = field(default_factory=list)
    stolen: list[float] = field(default_factory=list)  # each round's share taken by the host

    @property
    def key(self) -> tuple[str, bool]:
        return self.path, self.code

    def add(self, measured: Measured) -> None:
        self.calls += measured.calls
        self.ok_calls += measured.ok_calls
        self.asterisk_s += measured.asterisk_s
        self.service_s += measured.service_s
        self.wall_s += measured.wall_s
        self.events += measured.events
        self.requests += measured.requests
        self.rounds.append((measured.asterisk_s, measured.service_s, measured.ok_calls))
        self.stolen.append(measured.stolen)

    @property
    def label(self) -> str:
        return f"{self.path}, {'*9 (record)' if self.code else 'no code'}"

    def per_call_ms(self, seconds: float) -> float:
        return 1000 * seconds / max(self.ok_calls, 1)

    def figures(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "ok_calls": self.ok_calls,
            "asterisk_ms_per_call": round(self.per_call_ms(self.asterisk_s), 2),
            "service_ms_per_call": round(self.per_call_ms(self.service_s), 2),
            "total_ms_per_call": round(self.per_call_ms(self.asterisk_s + self.service_s), 2),
            "ari_events_per_call": round(self.events / max(self.ok_calls, 1), 1),
            "ari_requests_per_call": round(self.requests / max(self.ok_calls, 1), 1),
            "wall_s": round(self.wall_s, 1),
            "stolen_by_host_per_round": [round(share, 3) for share in self.stolen],
        }


@dataclass
class Measured:
    """One phase run: what it cost, before it is counted (or measured again)."""

    calls: int
    ok_calls: int
    asterisk_s: float
    service_s: float
    wall_s: float
    events: int
    requests: int
    stolen: float  # share of the machine's CPU time the host gave to other guests
    started: float  # wall clock, a second early: recording rows of this phase start later
    sipp_failed: bool = False


def machine_ticks() -> tuple[int, int]:
    """(stolen, all) CPU ticks of the machine so far (/proc/stat): on a virtual machine,
    the time the hypervisor gave our CPUs to someone else; a phase with much of it ran on a
    busy host, and costs more CPU per call for the same work."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def find_asterisk_pid(given: int | None) -> int:
    if given is not None:
        if not Path(f"/proc/{given}/stat").exists():
            raise Skip(f"no process {given} (--asterisk-pid)")
        return given
    found = [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _comm(p) == "asterisk" and not _is_remote_console(p)
    ]
    if len(found) != 1:
        raise Skip(
            f"{len(found)} asterisk processes here: say which one serves ARI_URL with "
            "--asterisk-pid (its CPU is measured from /proc)"
        )
    return found[0]


def _comm(proc: Path) -> str:
    with contextlib.suppress(OSError):
        return (proc / "comm").read_text().strip()
    return ""


def _is_remote_console(proc: Path) -> bool:
    with contextlib.suppress(OSError):
        return b"-r" in (proc / "cmdline").read_bytes().split(b"\0")
    return False


async def preflight(ari_url: str, username: str, password: str) -> None:
    """Skip (with the reason) unless sipp is installed and ARI answers."""
    if shutil.which("sipp") is None:
        raise Skip("sipp is not installed (Debian/Ubuntu: apt-get install sip-tester)")
    if not ari_url:
        raise Skip("ARI_URL is not set (e.g. ARI_URL=http://127.0.0.1:8088)")
    try:
        async with (
            aiohttp.ClientSession(
                headers={"Authorization": aiohttp.encode_basic_auth(username, password)},
                timeout=aiohttp.ClientTimeout(total=3),
            ) as session,
            session.get(ari_url.rstrip("/") + "/ari/asterisk/info") as response,
        ):
            if response.status != 200:
                raise Skip(f"ARI at {ari_url} answered {response.status} (check ARI_USERNAME/…)")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise Skip(f"no Asterisk at ARI_URL={ari_url} ({type(exc).__name__})") from None


class RealBench:
    def __init__(self, args: argparse.Namespace, workdir: Path, asterisk_pid: int) -> None:
        self.args = args
        self.workdir = workdir
        self.asterisk_pid = asterisk_pid
        self.service: Any = None
        self.database = contextlib.ExitStack()
        self.uas: asyncio.subprocess.Process | None = None
        self.phases: list[Phase] = []
        self.profile = cProfile.Profile(time.process_time) if args.profile else None
        self.problems: list[str] = []
        self.measured_again = 0  # pairs run again because the host was busy
        self.paths = [path for path in args.paths.split(",") if path]
        wanted = {name: name in args.codes.split(",") for name in ("none", "record")}
        self.codes = {False} if wanted["none"] else set()
        if wanted["record"] and not args.no_media:  # *9 travels in the RTP stream
            self.codes.add(True)

    async def start(self) -> None:
        from ari_metaflows.app import open_service, tune_garbage_collector
        from ari_metaflows.config import ListenAddress, Settings
        from ari_metaflows.db.embedded import embedded_postgres
        from ari_metaflows.metaflows.documents import validate_document
        from ari_metaflows.metaflows.store import Owner

        tune_garbage_collector()  # as serve does
        logging.basicConfig(
            level=self.args.log_level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            filename=str(self.workdir / "service.log"),
        )
        for noisy in ("embedded_postgres", "aioari", "aioswagger11"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        database_url = self.database.enter_context(
            embedded_postgres(self.workdir / "pg", delete_on_exit=True)
        )
        settings = Settings(
            ari_url=self.args.ari_url,
            ari_username=self.args.ari_username,
            ari_password=self.args.ari_password,
            ari_app=APP,
            database_url=database_url,
            data_dir=self.workdir,
            api_listen=ListenAddress("127.0.0.1", 0),
            log_level=self.args.log_level,
        )
        self.service = await open_service(settings, database_url)
        self.service.start_ari()
        await asyncio.wait_for(self.service.ari.connected.wait(), 10)
        await self.service.store.put(
            Owner.account(ACCOUNT),
            validate_document({"binding_digit": "*", "numbers": {"9": {"module": "record_call"}}}),
        )
        seconds = self.args.hold + 1.0
        write_pcap(self.workdir / "caller.pcap", CALLER_HZ, seconds)
        write_pcap(self.workdir / "caller-star9.pcap", CALLER_HZ, seconds, dtmf="*9")
        write_pcap(self.workdir / "callee.pcap", CALLEE_HZ, seconds + 1.0)
        uas = self._scenario("uas.xml", media=self.workdir / "callee.pcap")
        self.uas = await asyncio.create_subprocess_exec(
            *("sipp", "-sf", str(uas), "-i", "127.0.0.1", "-p", str(self.args.uas_port)),
            *("-mi", "127.0.0.1", "-mp", str(self.args.media_port + 100), "-nostdin", "-trace_err"),
            *("-error_file", str(self.workdir / "uas-errors.log")),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=self.workdir,
        )

    def _scenario(self, name: str, *, media: Path, hold_ms: int = 0) -> Path:
        text = (SCENARIOS / name).read_text()
        if self.args.no_media:  # set-up and tear-down only: nobody plays RTP
            text = "\n".join(line for line in text.splitlines() if "play_pcap_audio" not in line)
        text = text.replace("__MEDIA__", str(media)).replace("__HOLD__", str(hold_ms))
        path = self.workdir / f"{media.stem}-{name}"
        path.write_text(text)
        return path

    async def stop(self) -> None:
        try:
            if self.uas is not None and self.uas.returncode is None:
                self.uas.terminate()
                await self.uas.wait()
            if self.service is not None:
                await self.service.close()
        finally:
            self.database.close()

    async def run_phase(
        self, phase: Phase, *, calls: int | None = None, hold: float | None = None
    ) -> Measured:
        started = time.time() - 1
        calls = calls or self.args.calls
        hold = hold or self.args.hold
        media = self.workdir / ("caller-star9.pcap" if phase.code else "caller.pcap")
        uac = self._scenario("uac.xml", media=media, hold_ms=int(hold * 1000))
        engine = self.service.engine
        await asyncio.sleep(1.0)  # let the previous phase's hangups settle
        await self.asterisk_quiet()
        ticks0 = machine_ticks()
        asterisk0, service0, wall0 = (
            cpu_seconds(self.asterisk_pid),
            time.process_time(),
            time.time(),
        )
        metrics = self.service.engine.metrics
        gateway = self.service.engine.gateway
        events0, requests0 = metrics.ari_events, gateway.requests
        if self.profile is not None and phase.path == "app":
            self.profile.enable()
        process = await asyncio.create_subprocess_exec(
            *("sipp", "-sf", str(uac), "-s", phase.path),
            *("-i", "127.0.0.1", "-p", str(self.args.uac_port)),
            *("-mi", "127.0.0.1", "-mp", str(self.args.media_port), "-nostdin", "-trace_err"),
            *("-error_file", str(self.workdir / f"uac-{phase.path}-{phase.code}-errors.log")),
            *("-trace_stat", "-stf", str(self._stats(phase))),
            *("-m", str(calls), "-l", str(calls), "-r", str(self.args.rate)),
            *("-timeout", f"{int(hold * 3 + 30)}s", self.args.sip),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=self.workdir,
        )
        status = await process.wait()
        with contextlib.suppress(AssertionError):  # reported by the figures, not raised
            await eventually(lambda: not engine.calls, timeout=10, interval=0.05, what="no calls")
        await asyncio.sleep(0.5)  # Asterisk tears the last channels down
        settled = await self.asterisk_quiet()
        if self.profile is not None:
            self.profile.disable()
        ticks1 = machine_ticks()
        measured = Measured(
            calls=calls,
            ok_calls=calls if status == 0 else self._successful(phase),
            asterisk_s=cpu_seconds(self.asterisk_pid) - asterisk0,
            service_s=time.process_time() - service0,
            wall_s=time.time() - wall0,
            events=metrics.ari_events - events0,
            requests=gateway.requests - requests0,
            stolen=(ticks1[0] - ticks0[0]) / max(ticks1[1] - ticks0[1], 1),
            started=started,
            sipp_failed=status != 0,
        )
        print(
            f"  {phase.label:<24} done: {1000 * measured.asterisk_s / calls:.1f} + "
            f"{1000 * measured.service_s / calls:.1f} ms per call (Asterisk + service; "
            f"Asterisk idle {settled:.1f} s after; {100 * measured.stolen:.0f} % stolen by the "
            "host)",
            flush=True,
        )
        return measured

    async def asterisk_quiet(self, *, window: float = 0.5, timeout: float = 20.0) -> float:
        """Wait until Asterisk has caught up (under 5 % of a CPU for ``window`` s; idle it uses
        ~1 %): work a phase left queued (its CDRs, its hangups) is counted in that phase, not
        in the next one. The seconds waited."""
        started = time.monotonic()
        before = cpu_seconds(self.asterisk_pid)
        while time.monotonic() - started < timeout:
            await asyncio.sleep(window)
            now = cpu_seconds(self.asterisk_pid)
            if now - before < QUIET_SHARE * window:
                break
            before = now
        return time.monotonic() - started

    def _stats(self, phase: Phase) -> Path:
        return self.workdir / f"uac-{phase.path}-{'record' if phase.code else 'none'}.csv"

    def _successful(self, phase: Phase) -> int:
        """Calls sipp counts as successful, from its statistics file (when it failed some)."""
        stats = self._stats(phase)
        if not stats.exists():
            return 0
        header, *rows = stats.read_text().splitlines()
        if not rows:
            return 0
        names = header.split(";")
        values = rows[-1].split(";")
        with contextlib.suppress(ValueError, IndexError):
            return int(values[names.index("SuccessfulCall(C)")])
        return 0

    async def check_recordings(self, since: float) -> dict[str, Any]:
        """Every app call that pressed *9: its row, finished, and a file with both tones."""
        from ari_metaflows.recordings import RecordingStore

        assert await self.service.journal.flush(timeout=10)
        page = await RecordingStore(self.service.db).page(ACCOUNT, page_size=1000)
        rows = [r for r in page.recordings if r.started_at.timestamp() >= since]
        calls = {r.call_id for r in rows}
        finished = [r for r in rows if r.state == "finished"]
        with_both = 0
        gateway = self.service.engine.gateway
        for row in finished:
            try:
                async with gateway.stored_recording_file(row.name) as response:
                    audio = await response.read()
            except Exception as exc:  # reported, not raised
                self.problems.append(f"recording {row.name}: no file ({exc})")
                continue
            levels = tone_levels(audio, self.workdir / "check.wav")
            if both_parties(levels):
                with_both += 1
            else:
                self.problems.append(f"recording {row.name}: not both parties {levels}")
        return {
            "rows": len(rows),
            "calls_with_a_row": len(calls),
            "finished": len(finished),
            "files_with_both_parties": with_both,
        }

    async def run(self) -> dict[str, Any]:
        print(
            f"bench --real: {self.args.calls} calls x {self.args.hold:.0f} s per phase, "
            f"Asterisk pid {self.asterisk_pid}, SIP {self.args.sip}",
            flush=True,
        )
        figures: dict[str, Any] = {}
        checks: dict[str, Any] = {}
        codes = [code for code in (False, True) if code in self.codes]
        self.phases = [Phase(path, code) for code in codes for path in self.paths]
        phases = {phase.key: phase for phase in self.phases}
        if self.args.warmup:
            await self.warm_up()
        again = self.args.rounds  # pairs that may be measured again, in the whole run
        for number in range(self.args.rounds):
            for pair in schedule(self.phases, number):
                while True:
                    measured = [(phase, await self.run_phase(phase)) for phase in pair]
                    stolen = max(m.stolen for _, m in measured)
                    if stolen <= self.args.max_steal or again == 0:
                        break
                    again -= 1
                    self.measured_again += 1
                    print(
                        f"  (measured again: the host took {100 * stolen:.0f} % of the CPUs, "
                        f"over --max-steal {100 * self.args.max_steal:.0f} %)",
                        flush=True,
                    )
                for phase, m in measured:
                    phase.add(m)
                    if m.sipp_failed:
                        self.problems.append(f"{phase.label}: sipp failed some calls")
                    if phase.path == "app" and phase.code:
                        found = await self.check_recordings(m.started)
                        checks = {k: checks.get(k, 0) + v for k, v in found.items()}
        for phase in self.phases:
            figures[f"{phase.path}_{'record' if phase.code else 'none'}"] = phase.figures()
        app_record = phases.get(("app", True))
        if (
            app_record is not None
            and checks.get("files_with_both_parties", 0) < app_record.ok_calls
        ):
            self.problems.append(
                f"{app_record.ok_calls} calls pressed *9, "
                f"{checks.get('files_with_both_parties', 0)} files with both parties"
            )
        return {
            "phases": figures,
            "recordings": checks,
            "ratios": self.ratios(),
            "measured_again": self.measured_again,
        }

    async def warm_up(self) -> None:
        """A short phase of each path first, not counted: the first calls after Asterisk or
        the service started cost more (threads, caches, pooled connections), and only the
        first path run would pay for it."""
        for path in self.paths:
            await self.run_phase(Phase(path, False), calls=min(self.args.calls, 10), hold=2.0)
        print("  (warm-up above, not counted)", flush=True)

    def ratios(self) -> dict[str, Any]:
        by = {p.key: p for p in self.phases}
        result: dict[str, Any] = {}
        for code, name in ((True, "with_recording"), (False, "without_code")):
            native, app = by.get(("native", code)), by.get(("app", code))
            if native is None or app is None or not native.asterisk_s:
                continue
            native_ms = native.per_call_ms(native.asterisk_s)
            app_ms = app.per_call_ms(app.asterisk_s + app.service_s)
            result[name] = round(app_ms / native_ms, 3)
            result[f"service_share_{name}"] = round(app.service_s / max(app.asterisk_s, 1e-9), 3)
            result[f"rounds_{name}"] = [  # as above, one round at a time
                round(((a_ast + a_svc) / max(a_n, 1)) / (n_ast / max(n_n, 1)), 3)
                for (a_ast, a_svc, a_n), (n_ast, _, n_n) in zip(
                    app.rounds, native.rounds, strict=False
                )
                if n_ast
            ]
        return result


def schedule(phases: list[Phase], number: int) -> list[list[Phase]]:
    """Round ``number``: each code's paths side by side, a pair measured (and, on a busy host,
    measured again) together, their order reversed every other round (native, app, app,
    native, …), so that a drift of the machine's speed within a run weighs on both alike."""
    pairs: list[list[Phase]] = []
    for code in dict.fromkeys(phase.code for phase in phases):
        pair = [phase for phase in phases if phase.code == code]
        pairs.append(pair[::-1] if number % 2 else pair)
    return pairs


def report(results: dict[str, Any]) -> None:
    print("\nper call                     Asterisk  service    total  (CPU ms)  events  requests")
    for name, figures in results["phases"].items():
        print(
            f"  {name:<26} {figures['asterisk_ms_per_call']:>8}  "
            f"{figures['service_ms_per_call']:>7}  {figures['total_ms_per_call']:>7}"
            f"            {figures['ari_events_per_call']:>6}"
            f"  {figures['ari_requests_per_call']:>8}"
        )
    ratios = results["ratios"]
    print("\ntargets (issue 20)             measured  target")
    for name in ("with_recording", "without_code"):
        if name in ratios:
            rounds = ", ".join(str(r) for r in ratios[f"rounds_{name}"])
            print(f"  app ÷ native, {name:<16} {ratios[name]:>8}  ≤ {TARGETS[name]}")
            print(f"    its rounds: {rounds}")
            share = ratios[f"service_share_{name}"]
            print(f"  service ÷ Asterisk, {name:<11} {share:>8}  ≤ {TARGETS['service_share']}")
    if results["recordings"]:
        print(f"\nrecordings of the app's *9 run: {results['recordings']}")
    if results["measured_again"]:
        print(f"pairs measured again (the host busy): {results['measured_again']}")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./dev bench --real", description=__doc__.split("\n")[0])
    parser.add_argument("--real", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=40, help="concurrent calls per phase")
    parser.add_argument(
        "--rounds",
        type=int,
        default=6,
        help="rounds of all phases, the paths' order reversed every other round "
        "(one round's ratio moves by ±10 %%)",
    )
    parser.add_argument(
        "--codes",
        default="none,record",
        help="which calls: none (no code pressed), record (the caller presses *9)",
    )
    parser.add_argument(
        "--max-steal",
        type=float,
        default=0.05,
        help="measure a round's pair again when the host took more of the CPUs meanwhile "
        "(share of the machine's CPU time, /proc/stat steal; at most --rounds times a run)",
    )
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the short uncounted phase of each path that comes first",
    )
    parser.add_argument("--hold", type=float, default=8.0, help="seconds each call lasts")
    parser.add_argument("--rate", type=float, default=20.0, help="new calls per second")
    parser.add_argument(
        "--no-media",
        action="store_true",
        help="no RTP and no *9 phases: what set-up and tear-down cost, with little noise",
    )
    parser.add_argument("--paths", default="native,app", help="which paths to run, in order")
    parser.add_argument("--sip", default=os.environ.get("BENCH_SIP", "127.0.0.1:5060"))
    parser.add_argument(
        "--uas-port",
        type=int,
        default=int(os.environ.get("BENCH_UAS_PORT", UAS_PORT)),
        help="sipp's answering side (bench-uas's contact in pjsip.conf)",
    )
    parser.add_argument(
        "--uac-port", type=int, default=int(os.environ.get("BENCH_UAC_PORT", UAC_PORT))
    )
    parser.add_argument(
        "--media-port",
        type=int,
        default=int(os.environ.get("BENCH_MEDIA_PORT", MEDIA_PORT)),
        help="the caller's RTP ports start here, the callee's 100 higher",
    )
    parser.add_argument("--ari-url", default=os.environ.get("ARI_URL", ""))
    parser.add_argument("--ari-username", default=os.environ.get("ARI_USERNAME", ""))
    parser.add_argument("--ari-password", default=os.environ.get("ARI_PASSWORD", ""))
    parser.add_argument(
        "--asterisk-pid",
        type=int,
        default=int(os.environ.get("BENCH_ASTERISK_PID") or 0) or None,
        help="default: the only asterisk process",
    )
    parser.add_argument("--log-level", default="INFO", help="the service's (INFO, as serve)")
    parser.add_argument("--profile", type=Path, help="cProfile the service in the app phases")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser


async def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        await preflight(args.ari_url, args.ari_username, args.ari_password)
        pid = find_asterisk_pid(args.asterisk_pid)
    except Skip as skip:
        print(f"bench --real skipped: {skip}", flush=True)
        return 0
    with tempfile.TemporaryDirectory(prefix="metaflows-bench-real-") as workdir:
        bench = RealBench(args, Path(workdir), pid)
        try:
            await bench.start()
            results = await bench.run()
        finally:
            await bench.stop()
        if bench.profile is not None:
            bench.profile.dump_stats(str(args.profile))
    report(results)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    for problem in bench.problems:
        print(f"problem: {problem}")
    return 1 if bench.problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
