"""Prometheus metrics, written by hand: a few counters and one histogram need no library.

Hot paths (event routing, digits) only bump plain integers or dict entries; the text format
is produced when ``/metrics`` is scraped, which also reads gauges (active calls, legs,
reconnects) from the components through callbacks.
"""

from __future__ import annotations

import bisect
import contextvars
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Seconds. Dispatch is expected well under 2 ms; the top buckets catch a stalled loop.
DISPATCH_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(init=False)
    total: float = 0.0
    samples: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.samples += 1


Labels = tuple[tuple[str, str], ...]


@dataclass
class Metrics:
    """Everything the service counts. One instance per service."""

    dtmf_events: int = 0
    dtmf_handled: int = 0  # digits that reached a call task (and its collectors)
    relay_requests: int = 0  # POST /channels/{id}/dtmf sent to relay absorbed digits
    ari_events: int = 0
    codes: dict[tuple[str, str], int] = field(default_factory=dict)  # (module, outcome)
    api_requests: dict[tuple[str, int], int] = field(default_factory=dict)  # (method, status)
    dispatch: Histogram = field(default_factory=lambda: Histogram(DISPATCH_BUCKETS))
    # From the decision to relay a digit (its event handled, or its code given up) to the
    # relay request leaving for Asterisk (SPEC §5.6).
    relay: Histogram = field(default_factory=lambda: Histogram(DISPATCH_BUCKETS))
    gauges: dict[str, tuple[str, Callable[[], float]]] = field(default_factory=dict)
    # name → (help, labels → read): one family, a sample per label set
    labelled: dict[str, tuple[str, dict[Labels, Callable[[], float]]]] = field(default_factory=dict)

    def code(self, module: str, outcome: str) -> None:
        key = (module, outcome)
        self.codes[key] = self.codes.get(key, 0) + 1

    def api_request(self, method: str, status: int) -> None:
        key = (method, status)
        self.api_requests[key] = self.api_requests.get(key, 0) + 1

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.gauges[name] = (help_text, read)

    def labelled_gauge(
        self, name: str, help_text: str, labels: Labels, read: Callable[[], float]
    ) -> None:
        self.labelled.setdefault(name, (help_text, {}))[1][labels] = read

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        out: list[str] = []
        _family(out, "metaflows_ari_events_total", "counter", "ARI events received")
        out.append(f"metaflows_ari_events_total {self.ari_events}")
        _family(out, "metaflows_dtmf_events_total", "counter", "DTMF digits received")
        out.append(f"metaflows_dtmf_events_total {self.dtmf_events}")
        _family(out, "metaflows_dtmf_handled_total", "counter", "DTMF digits handled by calls")
        out.append(f"metaflows_dtmf_handled_total {self.dtmf_handled}")
        _family(out, "metaflows_dtmf_relay_requests_total", "counter", "DTMF relay requests")
        out.append(f"metaflows_dtmf_relay_requests_total {self.relay_requests}")
        _family(
            out,
            "metaflows_codes_total",
            "counter",
            "collected codes by module and outcome (module none: no metaflow matched)",
        )
        for (module, outcome), count in sorted(self.codes.items()):
            out.append(
                f"metaflows_codes_total{_labels((('module', module), ('outcome', outcome)))} "
                f"{count}"
            )
        _family(
            out,
            "metaflows_api_requests_total",
            "counter",
            "REST API requests by method and status",
        )
        for (method, status), count in sorted(self.api_requests.items()):
            labels = _labels((("method", method), ("status", str(status))))
            out.append(f"metaflows_api_requests_total{labels} {count}")
        _histogram(
            out,
            "metaflows_dispatch_seconds",
            "from a code's match to its action's first ARI request",
            self.dispatch,
        )
        _histogram(
            out,
            "metaflows_dtmf_relay_seconds",
            "from a digit's event (or its code given up) to its relay request",
            self.relay,
        )
        for gauge_name, (help_text, read) in sorted(self.gauges.items()):
            _family(out, gauge_name, "gauge", help_text)
            out.append(f"{gauge_name} {_number(read())}")
        for family_name, (help_text, samples) in sorted(self.labelled.items()):
            _family(out, family_name, "gauge", help_text)
            for label_set, read in sorted(samples.items()):
                out.append(f"{family_name}{_labels(label_set)} {_number(read())}")
        return "\n".join(out) + "\n"


def _histogram(out: list[str], name: str, help_text: str, histogram: Histogram) -> None:
    _family(out, name, "histogram", help_text)
    cumulative = 0
    for bound, count in zip((*histogram.buckets, math.inf), histogram.counts, strict=True):
        cumulative += count
        le = "+Inf" if bound == math.inf else repr(bound)
        out.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
    out.append(f"{name}_sum {histogram.total!r}")
    out.append(f"{name}_count {histogram.samples}")


def _family(out: list[str], name: str, kind: str, help_text: str) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")


def _labels(pairs: Labels) -> str:
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in pairs)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Dispatch:
    """Timing of one flow: when its code matched, and when it first asked Asterisk anything.

    Set in the flow task's context (``DISPATCH``); the gateway marks the first request, so the
    measured latency is exactly "match → first ARI request", whichever module runs.
    """

    __slots__ = ("_histogram", "first_request", "started")

    def __init__(self, histogram: Histogram | None) -> None:
        self.started = time.perf_counter()
        self.first_request: float | None = None
        self._histogram = histogram

    def mark_request(self) -> None:
        if self.first_request is None:
            self.first_request = time.perf_counter()
            if self._histogram is not None:
                self._histogram.observe(self.first_request - self.started)

    @property
    def latency(self) -> float | None:
        return None if self.first_request is None else self.first_request - self.started


DISPATCH: contextvars.ContextVar[Dispatch | None] = contextvars.ContextVar(
    "metaflows_dispatch", default=None
)


def mark_ari_request() -> None:
    """Called by the gateway before each ARI request."""
    dispatch = DISPATCH.get()
    if dispatch is not None:
        dispatch.mark_request()
