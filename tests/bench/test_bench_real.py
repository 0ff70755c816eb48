"""``./dev bench --real`` says why it skips, and its audio check tells one party from two."""

from __future__ import annotations

import math
import os
import socket
import struct
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from bench.media import CALLEE_HZ, CALLER_HZ, both_parties, tone_levels, write_pcap

ROOT = Path(__file__).resolve().parents[2]


def run_bench(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.run", "--real"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def base_env(path: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARI_")}
    env["PATH"] = path
    return env


@pytest.fixture
def path_with_sipp(tmp_path: Path) -> str:
    """A PATH with a sipp on it (a stand-in: the bench must stop before running it)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    sipp = fake / "sipp"
    sipp.write_text("#!/bin/sh\nexit 99\n")
    sipp.chmod(0o755)
    return str(fake)


def test_skips_without_sipp(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    env = base_env(str(empty)) | {"ARI_URL": f"http://127.0.0.1:{closed_port()}"}
    result = run_bench(env)
    assert result.returncode == 0, result.stderr
    assert "bench --real skipped: sipp is not installed" in result.stdout


def test_skips_without_ari_url(path_with_sipp: str) -> None:
    result = run_bench(base_env(path_with_sipp))
    assert result.returncode == 0, result.stderr
    assert "bench --real skipped: ARI_URL is not set" in result.stdout


def test_skips_when_no_asterisk_answers(path_with_sipp: str) -> None:
    port = closed_port()
    result = run_bench(base_env(path_with_sipp) | {"ARI_URL": f"http://127.0.0.1:{port}"})
    assert result.returncode == 0, result.stderr
    assert f"bench --real skipped: no Asterisk at ARI_URL=http://127.0.0.1:{port}" in result.stdout


def wav(path: Path, tones: list[float], seconds: float = 1.0) -> bytes:
    rate = 8000
    samples = [
        int(sum(4000 * math.sin(2 * math.pi * hz * n / rate) for hz in tones))
        for n in range(int(rate * seconds))
    ]
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return path.read_bytes()


def test_the_audio_check_needs_both_tones(tmp_path: Path) -> None:
    scratch = tmp_path / "check.wav"
    both = tone_levels(wav(tmp_path / "both.wav", [CALLER_HZ, CALLEE_HZ]), scratch)
    assert both_parties(both)
    caller_only = tone_levels(wav(tmp_path / "caller.wav", [CALLER_HZ]), scratch)
    assert not both_parties(caller_only)
    silence = tone_levels(wav(tmp_path / "silence.wav", []), scratch)
    assert not both_parties(silence)


def test_the_callers_pcap_carries_rfc4733_star_nine(tmp_path: Path) -> None:
    pcap = tmp_path / "caller.pcap"
    write_pcap(pcap, CALLER_HZ, 3.0, dtmf="*9")
    data = pcap.read_bytes()
    assert struct.unpack("<I", data[:4])[0] == 0xA1B2C3D4
    events: list[tuple[int, bool]] = []
    offset = 24
    while offset < len(data):
        length = struct.unpack("<I", data[offset + 8 : offset + 12])[0]
        rtp = data[offset + 16 + 42 : offset + 16 + length]  # past Ethernet, IPv4, UDP
        if rtp[1] & 0x7F == 101:
            events.append((rtp[12], bool(rtp[13] & 0x80)))
        offset += 16 + length
    assert [e for e, end in events if end] == [10, 10, 10, 9, 9, 9]  # '*' then '9', ends x3


@pytest.mark.parametrize("no_media", [False, True])
def test_no_media_leaves_the_audio_out(tmp_path: Path, no_media: bool) -> None:
    from bench.real import SCENARIOS, RealBench, parser

    args = parser().parse_args(["--no-media"] if no_media else [])
    bench = RealBench(args, tmp_path, asterisk_pid=1)
    for name in ("uac.xml", "uas.xml"):
        assert "play_pcap_audio" in (SCENARIOS / name).read_text()
        text = bench._scenario(name, media=tmp_path / "tone.pcap", hold_ms=500).read_text()
        assert ("play_pcap_audio" in text) is not no_media
        assert "__MEDIA__" not in text
        assert "__HOLD__" not in text
    assert args.rounds == 6


def test_rounds_pair_the_paths_and_swap_their_order_every_other_round(tmp_path: Path) -> None:
    """A drift of the machine's speed within a run must weigh on both paths alike: each
    code's two paths run side by side, native first in even rounds and app first in odd."""
    from bench.real import Phase, RealBench, parser, schedule

    bench = RealBench(parser().parse_args([]), tmp_path, asterisk_pid=1)
    assert bench.codes == {False, True}
    phases = [Phase(path, code) for code in (False, True) for path in bench.paths]
    assert [[p.key for p in pair] for pair in schedule(phases, 0)] == [
        [("native", False), ("app", False)],
        [("native", True), ("app", True)],
    ]
    assert [[p.key for p in pair] for pair in schedule(phases, 1)] == [
        [("app", False), ("native", False)],
        [("app", True), ("native", True)],
    ]
    assert bench.args.rounds % 2 == 0  # as many rounds with each path first
    assert RealBench(parser().parse_args(["--codes", "none"]), tmp_path, 1).codes == {False}
    assert RealBench(parser().parse_args(["--no-media"]), tmp_path, 1).codes == {False}


def test_each_rounds_ratio_is_reported_next_to_the_pooled_one(tmp_path: Path) -> None:
    from bench.real import Phase, RealBench, parser

    bench = RealBench(parser().parse_args(["--codes", "none"]), tmp_path, asterisk_pid=1)
    native, app = Phase("native", False), Phase("app", False)
    # (Asterisk s, service s, calls): the app's service CPU counts, the bench's own does not
    native.rounds = [(4.0, 0.1, 40), (4.4, 0.1, 40)]
    app.rounds = [(4.0, 0.4, 40), (4.2, 0.2, 40)]
    for phase in (native, app):
        phase.ok_calls = sum(calls for _, _, calls in phase.rounds)
        phase.asterisk_s = sum(cpu for cpu, _, _ in phase.rounds)
        phase.service_s = sum(cpu for _, cpu, _ in phase.rounds)
    bench.phases = [native, app]
    ratios = bench.ratios()
    assert ratios["rounds_without_code"] == [1.1, 1.0]
    assert ratios["without_code"] == round(8.8 / 8.4, 3)
    assert ratios["service_share_without_code"] == round(0.6 / 8.2, 3)


async def test_a_pair_measured_while_the_host_was_busy_is_measured_again(
    tmp_path: Path,
) -> None:
    """Steal inflates a phase's CPU per call: a pair with a phase over --max-steal is run
    again and only the clean run counts, within a budget of --rounds re-runs."""
    from bench.real import Measured, Phase, RealBench, parser

    args = parser().parse_args(["--codes", "none", "--rounds", "2", "--no-warmup"])
    bench = RealBench(args, tmp_path, asterisk_pid=1)
    # Steal of each phase run, in order: round 0's pair busy twice, then clean; round 1's
    # busy, but the budget (2) is spent: kept as it is.
    steals = iter([0.01, 0.09, 0.20, 0.0, 0.01, 0.02, 0.0, 0.30])
    ran: list[tuple[str, float]] = []

    async def run_phase(phase: Phase, **_: object) -> Measured:
        stolen = next(steals)
        ran.append((phase.path, stolen))
        cost = 4.0 * (1 + 3 * stolen)  # a busy host: more CPU for the same calls
        return Measured(40, 40, cost, 0.2, 10.0, 560, 320, stolen, started=0.0)

    bench.run_phase = run_phase  # type: ignore[method-assign]
    results = await bench.run()
    assert results["measured_again"] == 2  # the budget: --rounds
    native, app = bench.phases
    assert native.stolen == [0.01, 0.30]  # what counted
    assert app.stolen == [0.02, 0.0]
    assert [path for path, _ in ran] == ["native", "app"] * 3 + ["app", "native"]
    assert native.ok_calls == app.ok_calls == 80
    assert results["ratios"]["rounds_without_code"] == [
        round((4.0 * 1.06 + 0.2) / (4.0 * 1.03), 3),
        round((4.0 + 0.2) / (4.0 * 1.9), 3),
    ]


async def test_a_phase_ends_only_once_asterisk_is_idle_again(tmp_path: Path) -> None:
    """Work a phase leaves queued in Asterisk is counted in it: the bench waits for the
    process to go idle (here a real busy process never does, so the wait is bounded)."""
    import asyncio

    from bench.real import RealBench, parser

    busy = await asyncio.create_subprocess_exec(sys.executable, "-c", "while True: pass")
    try:
        bench = RealBench(parser().parse_args([]), tmp_path, asterisk_pid=busy.pid)
        waited = await bench.asterisk_quiet(window=0.1, timeout=0.5)
        assert waited >= 0.5
        idle = RealBench(parser().parse_args([]), tmp_path, asterisk_pid=os.getpid())
        assert await idle.asterisk_quiet(window=0.1, timeout=5) < 1.0
    finally:
        busy.kill()
        await busy.wait()
