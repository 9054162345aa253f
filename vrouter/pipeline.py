"""The node's forwarding state and the packet pipeline over it (ext/pipeline.h).

``Datapath`` owns one node's tables, all in one RCU domain: interfaces, next
hops, labels and VNIs (``nh``), the IPv4 / IPv6 routes of every VRF
(``lpm4`` / ``lpm6``), the flow table (``flows``) and policies (``policy``),
and the C pipeline that reads them. The node process's workers call the C
pipeline directly on their I/O bursts; ``process`` and ``trace`` here run
``bytes`` frames through the same code for tests, tools and benchmarks.

Each frame comes out as a ``Result``: forwarded on a vif, answered by the
vrouter (ARP, neighbour advertisement, echo reply, ICMP error) on the vif it
came from, handed to the host stack, or dropped with exactly one reason from
``DROP_REASONS``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from vrouter import _ext
from vrouter.flow import FlowTable, Timeouts
from vrouter.lpm import Lpm4, Lpm6
from vrouter.nexthop import NhTable
from vrouter.packet import HEADROOM, Burst
from vrouter.policy import PolicyTable

_C = _ext.pl_constants()
DROP_REASONS: tuple[str, ...] = tuple(_ext.drop_names())   # ext/drop.def; index = C enum; 0 = "none"
REPLIES: tuple[str, ...] = tuple(_ext.pl_reply_names())
VERDICTS: dict[int, str] = _C["verdicts"]
MAX_WORKERS: int = _C["max_workers"]
RESULT_DTYPE = np.dtype([("out_vif", "<u2"), ("verdict", "u1"), ("reason", "u1")])
assert RESULT_DTYPE.itemsize == _C["result_size"]
TAILROOM = 256           # answers may grow a frame (a neighbour advertisement does)
VIF_NONE = 0xFFFF


@dataclass(frozen=True)
class Result:
    verdict: str              # "forward" | "reply" | "host" | "drop"
    out_vif: int | None       # forward / reply
    reason: str | None        # drop: the drop reason; reply: what was answered
    frame: bytes              # the frame as it leaves (or as it was when dropped)


@dataclass(frozen=True)
class Trace:
    result: Result
    steps: list[dict] = field(default_factory=list)   # {"stage": ..., key: value, ...}

    def stage(self, name: str) -> list[dict]:
        return [s for s in self.steps if s["stage"] == name]

    def text(self) -> str:
        return "\n".join(s["stage"] + " " + " ".join(f"{k}={v}" for k, v in s.items() if k != "stage")
                         for s in self.steps)


def _value(v: str):
    try:
        return int(v)
    except ValueError:
        return v


def _parse_trace(text: str) -> list[dict]:
    steps = []
    for line in text.splitlines():
        stage, *pairs = line.split()
        step = {"stage": stage}
        for p in pairs:
            k, _, v = p.partition("=")
            step[k] = _value(v)
        steps.append(step)
    return steps


def _now(now) -> int:
    return time.monotonic_ns() if now is None else int(now)


class Datapath:
    """One node's tables and the pipeline over them."""

    def __init__(self, *, workers: int = 1, flow_capacity: int = 64 * 1024, nh_capacity: int = 65536,
                 timeouts: Timeouts | None = None, verify_ip4_csum: bool = False, domain=None):
        if not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"workers: must be 1..{MAX_WORKERS}, got {workers!r}")
        self.domain = domain if domain is not None else _ext.RcuDomain()
        self.nh = NhTable(nh_capacity, domain=self.domain)
        self.lpm4 = Lpm4(self.domain)
        self.lpm6 = Lpm6(self.domain)
        self.flows = FlowTable(flow_capacity, timeouts)
        self.policy = PolicyTable(self.domain)
        flags = _C["verify_ip4_csum"] if verify_ip4_csum else 0
        self._pl = _ext.Pipeline(self.nh._t, self.lpm4._t, self.lpm6._t, self.flows._t, self.policy._t,
                                 workers, flags)

    @property
    def workers(self) -> int:
        return self._pl.workers

    # -- frames in, results out ------------------------------------------------
    def burst(self, frames, vif=0, headroom: int = HEADROOM) -> Burst:
        """Descriptors over copies of frames (see vrouter.packet.Burst), ready for run()."""
        return Burst([bytes(f) for f in frames], headroom, vif, TAILROOM)

    def run(self, burst: Burst, *, now=None, worker: int = 0) -> list[Result]:
        res = np.zeros(len(burst), RESULT_DTYPE)
        self._pl.process(burst.descs, res, _now(now), worker)
        return [self._result(burst, i, r) for i, r in enumerate(res)]

    def process(self, frames, vif=0, *, now=None, worker: int = 0, headroom: int = HEADROOM) -> list[Result]:
        """Run frames (received on vif: one id, or one per frame) through the pipeline."""
        return self.run(self.burst(frames, vif, headroom), now=now, worker=worker)

    def process_one(self, frame, vif=0, **kw) -> Result:
        return self.process([frame], vif, **kw)[0]

    def trace(self, frame, vif: int, *, now=None) -> Trace:
        """Every stage's decision for one frame; a dry run (no flow installed, no counter moved).
        Call it from the thread that writes the tables (it reads their writer side)."""
        b = self.burst([frame], vif)
        res = np.zeros(1, RESULT_DTYPE)
        text = self._pl.trace(b.descs, res, _now(now))
        return Trace(self._result(b, 0, res[0]), _parse_trace(text))

    @staticmethod
    def _result(b: Burst, i: int, r) -> Result:
        verdict = VERDICTS[int(r["verdict"])]
        reason = (DROP_REASONS[int(r["reason"])] if verdict == "drop" else
                  REPLIES[int(r["reason"])] if verdict == "reply" else None)
        out = int(r["out_vif"])
        return Result(verdict, None if out == VIF_NONE else out, reason, b.frame(i))

    def revalidate_flows(self, vrf: int | None = None) -> int:
        """After a route change: delete the flows whose cached next hop the routes no longer give
        (all VRFs when vrf is None); their next packet is decided again. Returns pairs deleted."""
        return self._pl.revalidate_flows(-1 if vrf is None else _id("vrf", vrf, 0xFFFF))[0]

    # -- counters ---------------------------------------------------------------
    def stats(self) -> dict:
        """Totals over workers: frames, verdicts, flow hits / misses, encap / decap, drops per
        reason and answers per kind."""
        return self._pl.stats()

    def drop_stats(self) -> dict[str, int]:
        return {k: v for k, v in self._pl.stats()["drops"].items() if k != "none"}

    def vif_stats(self, vif: int) -> dict:
        return self._pl.vif_stats(_id("vif", vif, 0xFFFF))

    def vrf_stats(self, vrf: int) -> dict:
        return self._pl.vrf_stats(_id("vrf", vrf, 0xFFFF))

    def clear_stats(self) -> None:
        self._pl.clear_stats()


def _id(name: str, value, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= hi:
        raise ValueError(f"{name}: must be an integer 0..{hi}, got {value!r}")
    return int(value)
