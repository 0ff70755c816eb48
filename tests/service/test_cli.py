"""The command line as an administrator uses it: real processes, real database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ari_metaflows.cli import main
from ari_metaflows.testing.eventually import eventually

from ..conftest import ADMIN_TOKEN, PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOWS_", "ARI_"))}
    env.update(extra)
    return env


async def run_cli(*args: str, env: Mapping[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ari_metaflows",
        *args,
        env=dict(env),
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_configuration_error_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("METAFLOWS_API_LISTEN", "nonsense")
    assert main(["migrate"]) == 2
    assert "METAFLOWS_API_LISTEN" in capsys.readouterr().err


async def test_migrate_is_idempotent(database_url: str) -> None:
    env = cli_env(METAFLOWS_DATABASE_URL=database_url)
    for _ in range(2):
        code, out, _ = await run_cli("migrate", env=env)
        assert code == 0
        assert "up to date" in out


async def test_unreachable_database_is_reported(tmp_path: Path) -> None:
    env = cli_env(METAFLOWS_DATABASE_URL="postgresql://u:hidden-pw@127.0.0.1:9/x")
    code, _, err = await run_cli("token", "list", env=env)
    assert code == 1
    assert "database unavailable" in err
    assert "hidden-pw" not in err


async def test_token_lifecycle(database_url: str) -> None:
    env = cli_env(METAFLOWS_DATABASE_URL=database_url)
    code, out, _ = await run_cli("token", "create", "--account", "acc9", "--label", "crm", env=env)
    assert code == 0
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    token_id, secret = fields["token id"].strip(), fields["token"].strip()
    assert secret.startswith("mft_")

    code, out, _ = await run_cli("token", "list", env=env)
    assert code == 0
    assert token_id in out
    assert "active" in out
    assert secret not in out

    code, _, _ = await run_cli("token", "revoke", token_id, env=env)
    assert code == 0
    code, _, err = await run_cli("token", "revoke", token_id, env=env)
    assert code == 1
    assert "no active token" in err

    code, _, err = await run_cli("token", "create", "--account", "bad/id", env=env)
    assert code == 2


class Server:
    """``ari-metaflows serve`` in a subprocess."""

    def __init__(self, env: Mapping[str, str], port: int) -> None:
        self.env = env
        self.base = f"http://127.0.0.1:{port}"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ari_metaflows",
            "serve",
            env=dict(self.env),
            cwd=PROJECT_ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        process = self.process

        async def health(session: aiohttp.ClientSession) -> int:
            assert process.returncode is None, "serve exited early"
            async with session.get(self.base + "/healthz") as response:
                return response.status

        async with aiohttp.ClientSession() as session:
            try:
                await eventually(
                    lambda: health(session),
                    lambda status: status == 200,
                    timeout=60,  # a first start runs initdb: slow on a loaded machine
                    interval=0.05,
                    retry_on=(aiohttp.ClientConnectionError,),
                    what="serve's /healthz",
                )
            except AssertionError as exc:  # say why: serve's own log
                if process.returncode is None:
                    process.kill()
                _, err = await process.communicate()
                raise AssertionError(f"{exc}\nserve's stderr:\n{err.decode()[-3000:]}") from exc

    async def stop(self) -> str:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(self.process.communicate(), 30)
        assert self.process.returncode == 0, err.decode()
        return err.decode()

    async def wait_ready(self) -> None:
        await eventually(
            lambda: self.request("GET", "/readyz"),
            lambda body: body["status"] == "success",
            timeout=10,
            interval=0.05,
            what="serve's /readyz",
        )

    async def request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession(headers={"X-Auth-Token": ADMIN_TOKEN}) as session,
            session.request(method, self.base + path, json=body) as response,
        ):
            text = await response.text()
            payload: dict[str, Any] = json.loads(text)
            payload["_raw"] = text
            return payload


async def test_serve_with_embedded_database_keeps_documents_across_restarts(
    tmp_path: Path,
) -> None:
    """The README's `serve`: no database URL, data in METAFLOWS_DATA_DIR, SIGTERM stops it."""
    env = cli_env(
        ARI_URL="http://127.0.0.1:9",  # nothing listens: the service runs and retries
        METAFLOWS_DATA_DIR=str(tmp_path / "data"),
        METAFLOWS_ADMIN_TOKEN=ADMIN_TOKEN,
        METAFLOWS_API_LISTEN=f"127.0.0.1:{free_port()}",
    )
    keys = ["9(\\d)", "^1", "0+", "5$", "3.*"]
    server = Server(env, int(env["METAFLOWS_API_LISTEN"].rsplit(":", 1)[1]))
    await server.start()
    try:
        answer = await server.request(
            "POST",
            "/v2/accounts/acc1/users/u1/metaflows",
            {"data": {"patterns": {k: {"module": "hangup"} for k in keys}}},
        )
        assert answer["status"] == "success"
        ready = await server.request("GET", "/readyz")
        assert ready["data"]["checks"] == {"database": "ok", "asterisk": "unavailable"}
    finally:
        log = await server.stop()
    assert ADMIN_TOKEN not in log
    assert (tmp_path / "data" / "pgdata" / "PG_VERSION").exists()

    await server.start()
    try:
        answer = await server.request("GET", "/v2/accounts/acc1/users/u1/metaflows")
    finally:
        await server.stop()
    assert list(answer["data"]["patterns"]) == keys
    assert list(json.loads(answer["_raw"])["data"]["patterns"]) == keys


async def test_simulate_serves_ari_and_phone_control(tmp_path: Path) -> None:
    """`ari-metaflows simulate`: ARI for the service, phones for the person trying it."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ari_metaflows",
        "simulate",
        "--listen",
        f"127.0.0.1:{port}",
        "--phone",
        "alice:acc1:u1",
        "--phone",
        "bob:acc1",
        env=cli_env(),
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": aiohttp.encode_basic_auth("asterisk", "secret")}
    try:
        async with aiohttp.ClientSession(headers=auth) as session:

            async def info_status() -> int:
                async with session.get(base + "/ari/asterisk/info") as response:
                    return response.status

            await eventually(
                info_status,
                lambda status: status == 200,
                timeout=10,
                interval=0.05,
                retry_on=(aiohttp.ClientConnectionError,),
                what="the simulator's /ari/asterisk/info",
            )
            async with session.get(base + "/sim/phones", headers={}) as response:
                assert response.status in (200, 401)
            async with session.post(base + "/sim/phones/alice/call", params={"to": "bob"}) as r:
                assert (await r.json())["hears"] == "ringing"
            async with session.post(base + "/sim/phones/bob/answer") as r:
                assert (await r.json())["hears"] == "party:alice"
            async with session.post(base + "/sim/phones/bob/press", params={"digits": "x"}) as r:
                assert r.status == 400
            async with session.post(base + "/sim/phones/nobody/hangup") as r:
                assert r.status == 404
            async with session.get(base + "/ari/channels") as r:
                channels = await r.json()
            alice = next(c for c in channels if c["name"].startswith("PJSIP/alice"))
            assert alice["channelvars"]["METAFLOWS_USER_ID"] == "u1"
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0


def serve_against(sim: Any, database_url: str) -> Server:
    """``serve`` configured for a simulated Asterisk and the test's database."""
    port = free_port()
    env = cli_env(
        ARI_URL=sim.url,
        ARI_USERNAME=sim.username,
        ARI_PASSWORD=sim.password,
        METAFLOWS_DATABASE_URL=database_url,
        METAFLOWS_ADMIN_TOKEN=ADMIN_TOKEN,
        METAFLOWS_API_LISTEN=f"127.0.0.1:{port}",
    )
    return Server(env, port)


async def test_serve_gives_live_calls_their_metaflows(database_url: str) -> None:
    """`serve` against an ARI server: an API write, a call, *9, the module runs."""
    from ari_metaflows.sim import SimPhone, SimulatedAsteriskServer, StasisApp

    async with SimulatedAsteriskServer() as sim:
        sim.core.dialplan.add("internal", "1002", StasisApp("metaflows", ("dial", "PJSIP/1002")))
        alice = SimPhone(
            sim.core,
            sim.core.add_phone(
                "1001", variables={"METAFLOWS_ACCOUNT_ID": "acc1", "METAFLOWS_USER_ID": "alice"}
            ),
        )
        bob = SimPhone(sim.core, sim.core.add_phone("1002", on_call="answer"))
        server = serve_against(sim, database_url)
        await server.start()
        try:
            await server.wait_ready()
            answer = await server.request(
                "POST",
                "/v2/accounts/acc1/users/alice/metaflows",
                {"data": {"numbers": {"9": {"module": "play", "data": {"id": "beep"}}}}},
            )
            assert answer["status"] == "success"
            alice.call("1002", "internal")
            await alice.wait_hears("party", "1002")
            await alice.press("*9")
            await bob.wait_hears("playback", "sound:beep")
            legs = await server.request("GET", "/v2/accounts/acc1/channels")
            # 1002 carries no account and no default is configured: it belongs to nobody.
            assert [leg["role"] for leg in legs["data"]] == ["caller"]
        finally:
            log = await server.stop()
        assert "pressed 9" in log
        assert ADMIN_TOKEN not in log
        assert sim.password not in log


async def test_sigterm_leaves_calls_up_and_the_next_start_adopts_them(database_url: str) -> None:
    """SIGTERM during a call: the process exits 0 at once, the call goes on in Asterisk, and
    the next start rebuilds its state from ARI (the codes work again)."""
    from ari_metaflows.sim import SimPhone, SimulatedAsteriskServer, StasisApp

    async with SimulatedAsteriskServer() as sim:
        sim.core.dialplan.add("internal", "1002", StasisApp("metaflows", ("dial", "PJSIP/1002")))
        owner = {"METAFLOWS_ACCOUNT_ID": "acc1", "METAFLOWS_USER_ID": "alice"}
        alice = SimPhone(sim.core, sim.core.add_phone("1001", variables=owner))
        bob = SimPhone(sim.core, sim.core.add_phone("1002", on_call="answer"))
        server = serve_against(sim, database_url)
        await server.start()
        try:
            await server.wait_ready()
            await server.request(
                "POST",
                "/v2/accounts/acc1/users/alice/metaflows",
                {"data": {"numbers": {"9": {"module": "play", "data": {"id": "beep"}}}}},
            )
            alice.call("1002", "internal")
            await alice.wait_hears("party", "1002")
        finally:
            log = await server.stop()  # SIGTERM; asserts exit status 0
        assert "calls in progress continue in Asterisk" in log
        await asyncio.sleep(0.3)
        assert alice.hears() == ("party", "1002")  # nobody hung up
        (bridge,) = sim.core.bridges.values()
        assert len(bridge.channels) == 2

        await server.start()
        try:
            legs = await eventually(
                lambda: server.request("GET", "/v2/accounts/acc1/channels"),
                lambda legs: legs["status"] == "success" and legs["data"],
                timeout=10,
                interval=0.05,
            )
            assert [leg["role"] for leg in legs["data"]] == ["caller"]
            await alice.press("*9")
            await bob.wait_hears("playback", "sound:beep")
            await alice.hangup()
            await sim.core.wait_for(lambda: bob.channel is None)
        finally:
            await server.stop()
