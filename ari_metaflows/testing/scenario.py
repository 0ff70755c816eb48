"""Scenario harness: call scenarios written once, run on the simulator or a real Asterisk.

A scenario talks to a ``Driver``: it creates phones, has one call another through the app
under test (``Stasis(<app>,dial,<callee>)``), answers, presses keys, hangs up, and checks what
each person hears. ``SimDriver`` runs the simulated Asterisk; ``AsteriskDriver`` drives a real
one over ARI with Local channels and the test contexts of ``asterisk-conf/extensions.conf``:

* ``metaflows-test``: ``Stasis(metaflows,dial,Local/${EXTEN}@metaflows-test-phones/n)``,
  where the calling phone starts (a Local channel the driver originates);
* ``metaflows-test-phones``: ``Stasis(metaflows-test-driver,phone,${EXTEN})``, so a called
  phone's far end lands in the driver's own ARI application, which answers or rejects it.

On a real Asterisk a phone's owner ids can only be set on the calling side (originate
variables, copied by the test context); a called Local leg is identified by its extension (its
device id) and the service's default account.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ..sim import KeyTiming, SimPhone, SimulatedAsteriskServer, StasisApp
from ..sim.core import DialPhone
from ..sim.phones import Hearing
from .eventually import eventually

logger = logging.getLogger(__name__)

APP = "metaflows"
DRIVER_APP = "metaflows-test-driver"
POLL = 0.02  # seconds between looks at state that has no event (a real Asterisk is asked)


@dataclass
class Owner:
    account: str | None = None
    user: str | None = None
    device: str | None = None

    def variables(self) -> dict[str, str]:
        values = {
            "METAFLOWS_ACCOUNT_ID": self.account,
            "METAFLOWS_USER_ID": self.user,
            "METAFLOWS_DEVICE_ID": self.device,
        }
        return {k: v for k, v in values.items() if v}


@dataclass
class PlaybackSeen:
    """A playback a real Asterisk reported (PlaybackStarted … PlaybackFinished), with the
    driver's monotonic clock at each event: how long a leg heard it."""

    id: str
    target: str  # "channel:<id>" or "bridge:<id>"
    media: str
    started: float
    finished: float | None = None
    state: str = "playing"

    @property
    def seconds(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


class TestPhone(abc.ABC):
    """A person with a phone, as a scenario sees them."""

    name: str

    @abc.abstractmethod
    async def answer(self, timeout: float = 5.0) -> None: ...

    @abc.abstractmethod
    async def reject(self, timeout: float = 5.0) -> None: ...

    @abc.abstractmethod
    async def press(self, digits: str, timing: KeyTiming | None = None) -> None: ...

    @abc.abstractmethod
    async def hangup(self) -> None: ...

    @abc.abstractmethod
    async def hears(self) -> Hearing | None:
        """What the person hears now; None when the driver cannot observe it."""

    @abc.abstractmethod
    async def heard_dtmf(self) -> str: ...

    @abc.abstractmethod
    async def in_call(self) -> bool: ...

    async def wait_hears(self, kind: str, detail: str | None = None, timeout: float = 5.0) -> None:
        """Wait until the person hears ``kind`` (and ``detail``); a no-op where unobservable."""

        def heard(last: Hearing | None) -> bool:
            return last is None or (last.kind == kind and (detail is None or last.detail == detail))

        await eventually(
            self.hears,
            heard,
            timeout=timeout,
            interval=POLL,
            what=f"{self.name} hearing {kind}:{detail or '*'}",
        )

    async def wait_idle(self, timeout: float = 5.0) -> None:
        await eventually(
            self.in_call,
            lambda busy: not busy,
            timeout=timeout,
            interval=POLL,
            what=f"{self.name} out of calls",
        )


class Driver(abc.ABC):
    """Where the service under test connects, and how scenarios place calls."""

    ari_url: str
    ari_username: str
    ari_password: str
    app: str = APP
    default_account: str = "acc1"
    # Where the service under test sends transfers (METAFLOWS_TRANSFER_CONTEXT); every phone
    # is reachable there by its name (asterisk-conf/extensions.conf, [metaflows-test-transfer]).
    transfer_context: str = "metaflows-test-transfer"

    @abc.abstractmethod
    async def __aenter__(self) -> Driver: ...

    @abc.abstractmethod
    async def __aexit__(self, *exc: object) -> None: ...

    @abc.abstractmethod
    def add_phone(self, name: str, owner: Owner | None = None) -> TestPhone: ...

    @abc.abstractmethod
    async def call(
        self, caller: TestPhone, callee: TestPhone, *, ring_timeout: int | None = None
    ) -> None:
        """``caller`` dials ``callee`` through the app in dial mode."""

    @abc.abstractmethod
    async def app_connected(self) -> bool: ...

    @abc.abstractmethod
    async def hang_up_all(self) -> None:
        """End every call this driver placed or answered (before the app under test stops)."""

    async def wait_app_connected(self, timeout: float = 10.0) -> None:
        await eventually(
            self.app_connected,
            timeout=timeout,
            interval=POLL,
            what=f"the {self.app} application connected",
        )


# -- the simulator --------------------------------------------------------------------------


class SimTestPhone(TestPhone):
    def __init__(self, phone: SimPhone) -> None:
        self.phone = phone
        self.name = phone.name

    async def answer(self, timeout: float = 5.0) -> None:
        await self.phone.answer(timeout)

    async def reject(self, timeout: float = 5.0) -> None:
        await self.phone.reject(timeout)

    async def press(self, digits: str, timing: KeyTiming | None = None) -> None:
        await self.phone.press(digits, timing)

    async def hangup(self) -> None:
        await self.phone.hangup()

    async def hears(self) -> Hearing | None:
        return self.phone.hears()

    async def heard_dtmf(self) -> str:
        return self.phone.heard_dtmf

    async def in_call(self) -> bool:
        return self.phone.channel is not None


class SimDriver(Driver):
    def __init__(self, *, default_account: str = "acc1") -> None:
        self.sim = SimulatedAsteriskServer()
        self.ari_username = self.sim.username
        self.ari_password = self.sim.password
        self.default_account = default_account
        self.ari_url = ""

    async def __aenter__(self) -> SimDriver:
        await self.sim.__aenter__()
        self.ari_url = self.sim.url
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.sim.__aexit__(*exc)

    def add_phone(self, name: str, owner: Owner | None = None) -> SimTestPhone:
        owner = owner or Owner(account=self.default_account)
        phone = SimTestPhone(self.sim.add_phone(name, variables=owner.variables()))
        self.sim.core.dialplan.add(self.transfer_context, name, DialPhone(name, 20))
        return phone

    async def call(
        self, caller: TestPhone, callee: TestPhone, *, ring_timeout: int | None = None
    ) -> None:
        args = ["dial", f"PJSIP/{callee.name}"]
        if ring_timeout is not None:
            args.append(str(ring_timeout))
        exten = f"{callee.name}-{uuid.uuid4().hex[:6]}"
        self.sim.core.dialplan.add("metaflows-test", exten, StasisApp(self.app, tuple(args)))
        assert isinstance(caller, SimTestPhone)
        caller.phone.call(exten, "metaflows-test")

    async def app_connected(self) -> bool:
        return self.sim.core.registered(self.app)

    async def hang_up_all(self) -> None:
        for phone in list(self.sim.core.phones.values()):
            for channel in [c for c in phone.channels if not c.gone]:
                self.sim.core.phone_hangs_up(phone, channel)


# -- a real Asterisk ------------------------------------------------------------------------


@dataclass(eq=False)
class _RealPhone(TestPhone):
    driver: AsteriskDriver
    name: str
    owner: Owner
    # The driver-side channel of this phone (its "handset"), and its partner seen by the app.
    handset: str | None = None
    partner_name: str | None = None
    ringing: list[str] = field(default_factory=list)
    dtmf: list[str] = field(default_factory=list)

    async def _wait(self, predicate: Callable[[], bool], timeout: float) -> None:
        await eventually(predicate, timeout=timeout, interval=POLL, what=self.name)

    async def answer(self, timeout: float = 5.0) -> None:
        await self._wait(lambda: bool(self.ringing), timeout)
        channel = self.ringing.pop(0)
        self.handset = channel
        await self.driver.request("POST", f"/channels/{channel}/answer")

    async def reject(self, timeout: float = 5.0) -> None:
        await self._wait(lambda: bool(self.ringing), timeout)
        channel = self.ringing.pop(0)
        await self.driver.request("DELETE", f"/channels/{channel}", reason="busy")

    async def press(self, digits: str, timing: KeyTiming | None = None) -> None:
        """Press keys; return once the far end (the leg the app under test sees) has received
        every digit, as the simulator's press does.

        Asterisk answers ``POST /channels/{id}/dtmf`` at once and plays the digits later, at
        its own pace (``res/stasis/control.c`` queues the command; ``main/app.c`` waits 100 ms,
        then sends each digit followed by ``between``; ``main/channel.c`` on the reading side
        stretches a digit shorter than 80 ms and holds back one within 45 ms of the previous).
        So the driver waits for the evidence: one ChannelDtmfReceived per digit on the partner
        channel, seen through its own application's subscription to all channels.
        """
        timing = timing or KeyTiming()
        await self._wait(lambda: self.handset is not None, 5.0)
        handset = self.handset
        assert handset is not None
        partner = self.driver.partner_name(handset)
        received = self.driver.dtmf_received(partner)
        before = len(received)
        status, body = await self.driver.request(
            "POST",
            f"/channels/{handset}/dtmf",
            dtmf=digits,
            duration=timing.duration_ms,
            between=timing.gap_ms,
        )
        if status != 204:
            raise AssertionError(f"{self.name} cannot press {digits!r}: {status} {body}")
        # How long Asterisk takes to play them, plus a generous margin for a loaded machine.
        count = len(digits)
        playing = (100 + count * timing.duration_ms + (count - 1) * timing.gap_ms) / 1000
        got = await eventually(
            lambda: received[before:],
            lambda got: len(got) >= len(digits) or self.driver.gone(partner),
            timeout=playing + 5.0,
            interval=POLL,
            what=f"{partner} receiving the digits {digits!r} {self.name} pressed",
        )
        if not self.driver.gone(partner) and "".join(got) != digits:
            raise AssertionError(f"{self.name} pressed {digits!r}; {partner} got {got}")

    async def hangup(self) -> None:
        if self.handset is not None:
            await self.driver.request("DELETE", f"/channels/{self.handset}")

    async def in_call(self) -> bool:
        if self.handset is None:
            return False
        status, _ = await self.driver.request("GET", f"/channels/{self.handset}")
        return status == 200

    async def heard_dtmf(self) -> str:
        return "".join(self.dtmf)

    async def hears(self) -> Hearing | None:
        """Observable on ARI: who shares a bridge with this phone's partner, and playbacks."""
        if self.handset is None or not await self.in_call():
            return Hearing("idle")
        partner = await self.driver.partner_of(self)
        if partner is None:
            return None
        playing = await self.driver.playing_for(partner)
        if playing is not None and playing.startswith("tone:ring"):
            return Hearing("ringing")  # as the simulator reports a ringing tone
        if playing is not None:
            return Hearing("playback", playing)
        parties = await self.driver.parties_with(partner)
        if parties is None:
            return None
        return Hearing("party", ",".join(sorted(parties))) if parties else None


class AsteriskDriver(Driver):
    """Drives a real Asterisk (``ARI_URL``, ``ARI_USERNAME``, ``ARI_PASSWORD``)."""

    def __init__(self, url: str, username: str, password: str, *, default_account: str) -> None:
        self.ari_url = url.rstrip("/")
        self.ari_username = username
        self.ari_password = password
        self.default_account = default_account
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self.phones: dict[str, _RealPhone] = {}
        self._playbacks: dict[str, tuple[str, str]] = {}  # id → (target uri, media)
        self.playback_log: dict[str, PlaybackSeen] = {}  # every playback seen, by id
        self._names: dict[str, str] = {}  # channel id → name, from the events seen
        self._dtmf: dict[str, list[str]] = {}  # channel name → digits it received, in order
        self._destroyed: set[str] = set()  # names of channels that are gone

    @classmethod
    def from_environment(cls) -> AsteriskDriver | None:
        url = os.environ.get("ARI_URL")
        if not url:
            return None
        return cls(
            url,
            os.environ.get("ARI_USERNAME", ""),
            os.environ.get("ARI_PASSWORD", ""),
            default_account=os.environ.get("METAFLOWS_DEFAULT_ACCOUNT_ID", "acc1"),
        )

    async def __aenter__(self) -> AsteriskDriver:
        self._session = aiohttp.ClientSession(headers=self._headers)
        self._ws = await self._session.ws_connect(
            self.ari_url + "/ari/events",
            params={"app": DRIVER_APP, "subscribeAll": "true"},
            heartbeat=10,
            # Asterisk 22 does not answer a client's close frame: don't wait 10 s for it.
            timeout=aiohttp.ClientWSTimeout(ws_close=1.0),
        )
        self._reader = asyncio.create_task(self._read())
        # subscribeAll also subscribes to every device state, and Asterisk 22.10.1 can deadlock
        # closing such a websocket: the closing session thread holds the session lock while it
        # waits for the device-state subscription to drain, and that subscription's delivery
        # thread waits for the same lock to send a DeviceStateChanged (seen with gdb; every
        # later websocket of the app then hangs). The driver needs no device states: drop them
        # now, from a request thread, where the unsubscription holds no session lock.
        await self.request(
            "DELETE", f"/applications/{DRIVER_APP}/subscription", eventSource="deviceState:"
        )
        await self._clear_leftovers()
        return self

    async def _clear_leftovers(self) -> None:
        """Calls a crashed earlier run left in the test contexts would confuse this one."""
        status, channels = await self.request("GET", "/channels")
        if status != 200:
            return
        for channel in channels:
            if "@metaflows-test" in channel["name"]:
                await self.request("DELETE", f"/channels/{channel['id']}")

    async def hang_up_all(self) -> None:
        for phone in self.phones.values():
            for channel in [phone.handset, *phone.ringing]:
                if channel is not None:
                    with contextlib.suppress(aiohttp.ClientError):
                        await self.request("DELETE", f"/channels/{channel}")
        await self._clear_leftovers()

    async def __aexit__(self, *exc: object) -> None:
        await self.hang_up_all()  # leave nothing behind
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, path: str, **params: Any) -> tuple[int, Any]:
        assert self._session is not None
        query = {k: str(v) for k, v in params.items() if v is not None}
        async with self._session.request(
            method, self.ari_url + "/ari" + path, params=query
        ) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                self._on_event(json.loads(message.data))
            except Exception:
                logger.exception("driver event handling failed")

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        channel = event.get("channel") or {}
        if "id" in channel and "name" in channel:
            self._names[channel["id"]] = channel["name"]
        if kind == "ChannelDtmfReceived" and "name" in channel:
            self._dtmf.setdefault(channel["name"], []).append(event["digit"])
        elif kind == "ChannelDestroyed" and "name" in channel:
            self._destroyed.add(channel["name"])
        if kind == "StasisStart" and event.get("application") == DRIVER_APP:
            args = event.get("args", [])
            if args[:1] == ["phone"] and args[1] in self.phones:
                self.phones[args[1]].ringing.append(channel["id"])
        elif kind == "ChannelDtmfReceived":
            for phone in self.phones.values():
                if phone.handset == channel.get("id"):
                    phone.dtmf.append(event["digit"])
        elif kind == "PlaybackStarted":
            playback = event["playback"]
            self._playbacks[playback["id"]] = (playback["target_uri"], playback["media_uri"])
            self.playback_log[playback["id"]] = PlaybackSeen(
                playback["id"], playback["target_uri"], playback["media_uri"], time.monotonic()
            )
        elif kind == "PlaybackFinished":
            playback = event["playback"]
            self._playbacks.pop(playback["id"], None)
            seen = self.playback_log.get(playback["id"])
            if seen is not None:
                seen.finished = time.monotonic()
                seen.state = str(playback.get("state", "done"))

    def partner_name(self, handset: str) -> str:
        """The other half of a phone's Local channel: the leg the app under test sees."""
        name = self._names.get(handset)
        if name is None:
            raise AssertionError(f"the driver never saw channel {handset}")
        return name[:-2] + (";1" if name.endswith(";2") else ";2")

    def dtmf_received(self, channel_name: str) -> list[str]:
        """The digits a channel has received so far (a live list: it grows as events come)."""
        return self._dtmf.setdefault(channel_name, [])

    def gone(self, channel_name: str) -> bool:
        return channel_name in self._destroyed

    def add_phone(self, name: str, owner: Owner | None = None) -> _RealPhone:
        phone = _RealPhone(self, name, owner or Owner(account=self.default_account))
        self.phones[name] = phone
        return phone

    async def call(
        self, caller: TestPhone, callee: TestPhone, *, ring_timeout: int | None = None
    ) -> None:
        assert isinstance(caller, _RealPhone)
        # Plain variables on the handset; the metaflows-test context IMPORT()s them into the
        # owner variables of the leg the app sees (inheritance would reach the callee too).
        owner = caller.owner
        variables = {
            "MF_ACCOUNT": owner.account or "",
            "MF_USER": owner.user or "",
            "MF_DEVICE": owner.device or caller.name,
        }
        if ring_timeout is not None:
            variables["MF_RING_TIMEOUT"] = str(ring_timeout)
        assert self._session is not None
        async with self._session.post(
            self.ari_url + "/ari/channels",
            params={
                "endpoint": f"Local/{callee.name}@metaflows-test",
                "app": DRIVER_APP,
                "appArgs": f"caller,{caller.name}",
            },
            json={"variables": variables},
        ) as response:
            body = await response.json()
            if response.status != 200:
                raise AssertionError(f"originate failed: {response.status} {body}")
        caller.handset = body["id"]
        self._names[body["id"]] = body["name"]
        caller.partner_name = body["name"][:-2] + ";2"

    async def partner_of(self, phone: _RealPhone) -> dict[str, Any] | None:
        """The Local half the app under test sees for this phone."""
        status, channels = await self.request("GET", "/channels")
        if status != 200 or phone.handset is None:
            return None
        by_id = {c["id"]: c for c in channels}
        mine = by_id.get(phone.handset)
        if mine is None:
            return None
        name = mine["name"]
        wanted = name[:-2] + (";1" if name.endswith(";2") else ";2")
        return next((c for c in channels if c["name"] == wanted), None)

    async def playing_for(self, channel: dict[str, Any]) -> str | None:
        """A playback on the partner channel, or on the bridge it is in."""
        targets = {f"channel:{channel['id']}"}
        status, bridges = await self.request("GET", "/bridges")
        if status == 200:
            targets |= {f"bridge:{b['id']}" for b in bridges if channel["id"] in b["channels"]}
        for target, media in self._playbacks.values():
            if target in targets:
                return media
        return None

    async def parties_with(self, channel: dict[str, Any], depth: int = 0) -> list[str] | None:
        status, bridges = await self.request("GET", "/bridges")
        if status != 200:
            return None
        status, channels = await self.request("GET", "/channels")
        names = {c["id"]: c["name"] for c in channels}
        by_name = {c["name"]: c for c in channels}
        for bridge in bridges:
            if channel["id"] not in bridge["channels"]:
                continue
            if any(t == f"bridge:{bridge['id']}" for t, _ in self._playbacks.values()):
                return None  # hears() reports the bridge's playback itself
            parties: list[str] = []
            for member in bridge["channels"]:
                if member == channel["id"]:
                    continue
                name = names.get(member, "")
                # A transfer target dials the phone from a Local channel whose ;1 half sits in
                # the app's bridge: the phone hears whoever shares that bridge.
                near = by_name.get(name[:-2] + ";1") if name.endswith(";2") else None
                if depth < 2 and "@metaflows-test-transfer" in name and near is not None:
                    behind = await self.parties_with(near, depth + 1)
                    if behind:
                        parties += behind
                        continue
                parties.append(self._phone_behind(name))
            return parties
        return []

    def _phone_behind(self, channel_name: str) -> str:
        # Local/<callee>@metaflows-test-phones-…;1 is the called phone; the caller's
        # Local/<callee>@metaflows-test-…;2 is the calling phone.
        for phone in self.phones.values():
            if phone.partner_name == channel_name:
                return phone.name
        if channel_name.startswith("Local/") and (
            "@metaflows-test-phones" in channel_name or "@metaflows-test-transfer" in channel_name
        ):
            return channel_name[len("Local/") :].split("@", 1)[0]
        return channel_name

    async def app_connected(self) -> bool:
        status, apps = await self.request("GET", "/applications")
        return status == 200 and any(a["name"] == self.app for a in apps)


def driver_from_environment() -> Driver:
    """A real Asterisk when ``ARI_URL`` is set, else the simulator."""
    return AsteriskDriver.from_environment() or SimDriver()
