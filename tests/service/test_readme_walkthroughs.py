"""The README's walkthroughs, run as written: the README cannot drift from the product.

A shell block after ``<!-- walkthrough NAME -->`` is a step of walkthrough NAME (several names,
comma-separated, share a block); ``: background`` marks a long-running command (another
terminal), and a ``text`` block after ``<!-- walkthrough NAME: output -->`` is what the step
before it prints: each line must appear in a line of the output, in order, ``…`` standing for
anything. Steps run with bash in a temporary directory holding a ``./dev`` that runs
``python -m ari_metaflows`` (what ``./dev`` does for these commands once its venv exists); the
foreground steps share one shell, as the reader's terminal does. The README's addresses
(127.0.0.1:8000 for the API, 127.0.0.1:8088 for ARI) are replaced by free ports, and the
service's defaults for them are set to the same ports. A step that only reads (curl without
``-X`` or ``-d``) is repeated until its output matches, as a reader would look again; any other
step must print its output at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..conftest import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
BLOCK = re.compile(
    r"<!-- walkthrough ([a-z, ]+?)(?:: (background|output))? -->\n```(sh|text)\n(.*?)\n```",
    re.S,
)
API, ARI = "127.0.0.1:8000", "127.0.0.1:8088"
CURL_SHIM = Path(__file__).parent.parent / "helpers" / "curl_shim.py"


@dataclass
class Step:
    kind: str  # "run" or "background"
    text: str
    expected: list[str] = field(default_factory=list)


def walkthrough(name: str) -> list[Step]:
    steps: list[Step] = []
    for match in BLOCK.finditer(README.read_text()):
        names, kind, language, body = match.groups()
        if name not in [n.strip() for n in names.split(",")]:
            continue
        if kind == "output":
            assert language == "text", f"{name}: an output must be a text block"
            assert steps, f"{name}: output without a step"
            steps[-1].expected.extend(line for line in body.splitlines() if line.strip())
        else:
            assert language == "sh", f"{name}: a step must be a sh block"
            steps.append(Step(kind or "run", body))
    assert steps, f"no walkthrough {name!r} in README.md"
    return steps


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def missing(expected: list[str], output: str) -> str | None:
    """The first expected line not found (in order) in the output, else None."""
    position = 0
    for line in expected:
        pattern = ".*?".join(re.escape(part.strip(" ")) for part in line.split("…"))
        found = re.compile(pattern).search(output, position)
        if found is None:
            return line
        position = found.end()
    return None


def read_only(text: str) -> bool:
    commands = [line for line in text.splitlines() if line.strip() and "=" not in line[:12]]
    return all(line.startswith("curl ") and " -X " not in line for line in commands) and (
        " -d " not in text
    )


class Terminal:
    """One interactive bash: steps run in turn, with the variables of earlier steps."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Terminal:
        self.process = await asyncio.create_subprocess_exec(
            "bash",
            "--noprofile",
            "--norc",
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    async def run(self, text: str) -> str:
        assert self.process is not None
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        sentinel = f"__step_done_{uuid.uuid4().hex}__"
        self.process.stdin.write(f"{text}\necho; echo {sentinel}$?\n".encode())
        await self.process.stdin.drain()
        lines = []
        async with asyncio.timeout(15):
            while True:
                line = (await self.process.stdout.readline()).decode()
                assert line, "the shell exited"
                if line.startswith(sentinel):
                    status = int(line.removeprefix(sentinel))
                    break
                lines.append(line)
        output = "".join(lines)
        assert status == 0, f"step failed ({status}):\n{text}\n{output}"
        return output


class Background:
    """A command the README runs in another terminal, its output collected."""

    def __init__(self, text: str, cwd: Path, env: dict[str, str]) -> None:
        self.text, self.cwd, self.env = text, cwd, env
        self.output = ""
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            self.text,
            cwd=self.cwd,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the whole command, as in a terminal
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.output += line.decode()

    async def stop(self) -> int:
        assert self.process is not None
        assert self._reader is not None
        if self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGINT)  # Ctrl-C
        try:
            code = await asyncio.wait_for(self.process.wait(), 20)
        finally:
            if self.process.returncode is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                await self.process.wait()
            await self._reader
        return code


@contextlib.asynccontextmanager
async def walked(
    name: str, tmp_path: Path, database_url: str | None = None, *, curl_shim: bool = False
) -> AsyncIterator[list[Background]]:
    """Run walkthrough ``name``; yield its background processes (still running). Without a
    curl on the machine (or with ``curl_shim``) a Python stand-in for it is put on PATH."""
    ports = {API: f"127.0.0.1:{free_port()}", ARI: f"127.0.0.1:{free_port()}"}

    def local(text: str) -> str:
        for readme, ours in ports.items():
            text = text.replace(readme, ours)
        return text

    dev = tmp_path / "dev"
    dev.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ari_metaflows "$@"\n')
    dev.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOWS_", "ARI_"))}
    env |= {"METAFLOWS_API_LISTEN": ports[API], "ARI_URL": f"http://{ports[ARI]}"}
    if database_url is not None:
        env["METAFLOWS_DATABASE_URL"] = database_url
    if curl_shim or shutil.which("curl", path=env.get("PATH")) is None:
        (tmp_path / "bin").mkdir()
        curl = tmp_path / "bin" / "curl"
        curl.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{CURL_SHIM}" "$@"\n')
        curl.chmod(0o755)
        env["PATH"] = f"{curl.parent}{os.pathsep}{env.get('PATH', '')}"
    background: list[Background] = []
    try:
        async with Terminal(tmp_path, env) as terminal:
            for step in walkthrough(name):
                expected = [local(line) for line in step.expected]
                if step.kind == "background":
                    process = Background(local(step.text), tmp_path, env)
                    background.append(process)
                    await process.start()
                    await until_printed(process, expected)
                    continue
                output = await terminal.run(local(step.text))
                looks = 50 if read_only(step.text) else 1  # a reader looks again for 10 s
                while (line := missing(expected, output)) is not None:
                    looks -= 1
                    assert looks > 0, f"{line!r} not in the output of\n{step.text}\n{output}"
                    await asyncio.sleep(0.2)
                    output = await terminal.run(local(step.text))
        yield background
    finally:
        codes = [await process.stop() for process in reversed(background)]
        logs = "\n".join(process.output for process in background)
        assert "Traceback" not in logs, logs
        assert codes == [0] * len(background), logs


async def until_printed(process: Background, expected: list[str]) -> None:
    try:
        async with asyncio.timeout(30):
            while missing(expected, process.output) is not None:
                assert process.process is not None
                assert process.process.returncode is None, process.output
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(
            f"{missing(expected, process.output)!r} not in\n{process.output}"
        ) from None


async def test_quick_start(tmp_path: Path) -> None:
    """`./dev serve` on a fresh checkout: embedded PostgreSQL in .ari-metaflows/, the API up,
    and no Asterisk said once, plainly."""
    async with walked("quickstart", tmp_path) as (serve,):
        await asyncio.sleep(1.5)  # a few more quiet attempts (0.5 s, 1 s, …)
    assert (tmp_path / ".ari-metaflows" / "pgdata" / "PG_VERSION").exists()
    assert serve.output.count("waiting for Asterisk") == 1, serve.output
    assert serve.output.count("ARI connection to") == 1  # the retries are quiet
    assert "change-me-0123456789" not in serve.output


async def test_simulator_walkthrough(tmp_path: Path, database_url: str) -> None:
    """Metaflows first, phones with users, a call, *9 records it, *2 transfers to a third
    phone, the audit trail shows both codes."""
    async with walked("simulator", tmp_path, database_url) as (_simulate, serve):
        pass
    assert "blind transfer of PJSIP/1002-" in serve.output
    assert "to 1003@default" in serve.output


@pytest.mark.parametrize("curl_shim", [False, True], ids=["curl", "python-curl-shim"])
async def test_api_examples(tmp_path: Path, database_url: str, curl_shim: bool) -> None:
    """The REST API examples, with curl, and with the stand-in used where curl is missing."""
    async with walked("api", tmp_path, database_url, curl_shim=curl_shim):
        pass


def test_every_curl_example_runs_or_shows_placeholders() -> None:
    """A README example that no walkthrough runs must say it needs the reader's ids."""
    text = README.read_text()
    marked = {m.start(3) for m in BLOCK.finditer(text)}
    for block in re.finditer(r"```sh\n(.*?)\n```", text, re.S):
        if "curl " not in block.group(1) or block.start() + 3 in marked:
            continue
        assert re.search(r"\b[A-Z][A-Z_]*_(ID|KEY)\b", block.group(1)), block.group(1)


@pytest.mark.parametrize("name", ["quickstart", "simulator", "api"])
def test_walkthroughs_are_well_formed(name: str) -> None:
    steps = walkthrough(name)
    assert all(step.expected for step in steps if step.kind == "background")
    assert sum(bool(step.expected) for step in steps) >= 2
