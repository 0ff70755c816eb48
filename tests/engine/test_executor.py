"""Running a metaflow node: children, branches, inherited context, failures (SPEC §6)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from ari_metaflows.ari.gateway import AriGateway, Gone
from ari_metaflows.calls.feature import ModuleContext, Playbacks, run_flow
from ari_metaflows.features import build_registry
from ari_metaflows.metaflows.documents import Node, validate_node

REGISTRY = build_registry().runners


class RecordingGateway:
    """Stands in for Asterisk at the edge: records what modules ask for."""

    def __init__(self, gone: set[str] | None = None) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.gone = gone or set()
        self.playbacks = Playbacks()  # as the call's ledger: PlaybackFinished settles it

    def _played(self, playback_id: str | None) -> str:
        """Asterisk plays it out and reports PlaybackFinished right after the answer."""
        played = playback_id or f"pb-{len(self.requests)}"
        asyncio.get_running_loop().call_soon(self.playbacks.finished, played, "done")
        return played

    async def play_on_bridge(
        self, bridge_id: str, media: str, lang: str | None = None, playback_id: str | None = None
    ) -> str:
        self.requests.append(("play_on_bridge", media))
        return self._played(playback_id)

    async def play_on_channel(
        self, channel_id: str, media: str, lang: str | None = None, playback_id: str | None = None
    ) -> str:
        if channel_id in self.gone:
            raise Gone(404, "Channel not found")
        self.requests.append(("play_on_channel", (channel_id, media, lang)))
        return self._played(playback_id)

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        self.requests.append(("hangup", channel_id))

    async def stop_playback(self, playback_id: str) -> None:
        self.requests.append(("stop_playback", playback_id))


def context(gateway: RecordingGateway, **data: Any) -> ModuleContext:
    return ModuleContext(
        call_id="c1",
        gateway=cast(AriGateway, gateway),
        presser="caller",
        channels={"caller": "ch-a", "callee": "ch-b"},
        bridge_id="br-1",
        data={"dtmf_leg": "caller", "collected": "21234", "captures": ["1234"], **data},
        playbacks=gateway.playbacks,
    )


def node(raw: dict[str, Any]) -> Node:
    return Node.from_json(validate_node(raw))


async def test_children_run_in_order_through_the_default_branch() -> None:
    gateway = RecordingGateway()
    tree = node(
        {
            "module": "play",
            "data": {"id": "beep"},
            "children": {
                "_": {
                    "module": "say",
                    "data": {"text": "12", "type": "digits", "leg": "self", "language": "fr"},
                    "children": {"_": {"module": "hangup"}},
                }
            },
        }
    )
    steps = await run_flow(tree, context(gateway), REGISTRY)
    assert steps == [("play", "ok"), ("say", "ok"), ("hangup", "ok")]
    assert gateway.requests == [
        ("play_on_bridge", "sound:beep"),
        ("play_on_channel", ("ch-a", "digits:12", "fr")),
        ("hangup", "ch-a"),
    ]


async def test_a_failing_module_ends_the_flow_only() -> None:
    gateway = RecordingGateway(gone={"ch-b"})
    tree = node(
        {
            "module": "play",
            "data": {"id": "x", "leg": "peer"},
            "children": {"_": {"module": "hangup"}},
        }
    )
    steps = await run_flow(tree, context(gateway), REGISTRY)
    assert steps == [("play", "failed")]
    assert gateway.requests == []


async def test_a_module_not_built_yet_is_reported_not_run() -> None:
    gateway = RecordingGateway()
    without_park = {name: run for name, run in REGISTRY.items() if name != "park"}
    steps = await run_flow(node({"module": "park"}), context(gateway), without_park)
    assert steps == [("park", "unavailable")]
    assert gateway.requests == []


async def test_a_call_module_without_a_call_fails_the_flow_only() -> None:
    gateway = RecordingGateway()
    steps = await run_flow(
        node({"module": "transfer", "data": {"target": "1234"}}), context(gateway), REGISTRY
    )
    assert steps == [("transfer", "failed")]
    assert gateway.requests == []


async def test_children_inherit_the_injected_context() -> None:
    seen: list[dict[str, Any]] = []

    async def spy(ctx: ModuleContext) -> str | None:
        seen.append(dict(ctx.data))
        return "next" if len(seen) == 1 else None

    registry = {**REGISTRY, "hangup": spy, "break": spy}
    tree = node(
        {
            "module": "hangup",
            "children": {
                "next": {"module": "break"},
                "_": {"module": "play", "data": {"id": "never"}},
            },
        }
    )
    steps = await run_flow(tree, context(RecordingGateway()), registry)
    assert [s[0] for s in steps] == ["hangup", "break"]  # the named branch, not "_"
    assert all(d["captures"] == ["1234"] and d["collected"] == "21234" for d in seen)
    assert all(d["dtmf_leg"] == "caller" for d in seen)


async def test_break_stops_what_plays_on_the_presser_and_the_bridge() -> None:
    gateway = RecordingGateway()
    ctx = context(gateway)
    ctx.playbacks.started("p-self", "caller")
    ctx.playbacks.started("p-peer", "callee")
    ctx.playbacks.started("p-all", "bridge")
    await run_flow(node({"module": "break"}), ctx, REGISTRY)
    assert sorted(r[1] for r in gateway.requests) == ["p-all", "p-self"]
    assert list(ctx.playbacks.by_id) == ["p-peer"]


def test_every_module_that_runs_has_a_schema() -> None:
    from ari_metaflows.metaflows.documents import module_specs

    assert set(REGISTRY) <= set(module_specs())
