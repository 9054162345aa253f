"""Stateful test: the C flow table and the dict model (tests/flow_ref.py)
driven through the same random sequence of inserts, deletes, packets,
clock jumps, sweeps and quota changes; the whole table is compared after
every step."""
import numpy as np
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from vrouter.flow import NS, FlowTable, Timeouts, make_key

from flow_ref import FlowModel, key_tuple

TO = Timeouts(tcp=180, tcp_close=10, udp=60, icmp=30, other=60, drop=5)
CAP = 24                       # 12 pairs: full table reached often

KEYS = st.tuples(st.integers(1, 3), st.sampled_from(["tcp", "udp", "icmp", 47]),
                 st.integers(1, 4), st.integers(1, 3), st.booleans())


def key_of(spec):
    vrf, proto, a, b, v6 = spec
    if v6:
        proto = "icmp6" if proto == "icmp" else proto
        return make_key(vrf, proto, f"2001:db8::{a}", f"2001:db8:1::{b}", a, 128 if proto == "icmp6" else b)
    return make_key(vrf, proto, f"10.0.0.{a}", f"10.0.1.{b}", a, 8 if proto == "icmp" else b)


class FlowMachine(RuleBasedStateMachine):
    @initialize(qvif=st.integers(0, 4), qvrf=st.integers(0, 5))
    def setup(self, qvif, qvrf):
        self.t = FlowTable(CAP, TO, quota_per_vif=qvif, quota_per_vrf=qvrf)
        self.m = FlowModel(CAP, TO.as_ns(), quota_vif=qvif, quota_vrf=qvrf)
        self.now = 0

    @rule(spec=KEYS, vif=st.integers(0, 2), nh=st.integers(0, 2 ** 32 - 1), drop=st.booleans(),
          from_reverse=st.booleans())
    def insert(self, spec, vif, nh, drop, from_reverse):
        k = key_of(spec)
        if from_reverse:
            k = self.t.reverse_keys(k)
        kt = key_tuple(k[0])
        expect = self.m.refusal(kt, vif)
        r = self.t.insert_pair(k, nh, nh ^ 1, vif=vif, action="drop" if drop else "forward", now=self.now)
        assert r.reason == (expect or "none"), (r, expect)
        if expect is None:
            self.m.insert(kt, r.index // 2, nh, nh ^ 1, vif, int(drop), 0, 0, self.now)

    @rule(spec=KEYS, reverse=st.booleans())
    def delete(self, spec, reverse):
        k = key_of(spec)
        if reverse:
            k = self.t.reverse_keys(k)
        hit = self.m.lookup(key_tuple(k[0]))
        assert self.t.delete(k) == (hit is not None)
        if hit:
            self.m.remove(hit[0])

    @rule(spec=KEYS, reverse=st.booleans(), flags=st.sampled_from([0x02, 0x12, 0x10, 0x11, 0x04, 0]),
          nbytes=st.integers(0, 1500))
    def packet(self, spec, reverse, flags, nbytes):
        k = key_of(spec)
        if reverse:
            k = self.t.reverse_keys(k)
        res = self.t.lookup(k)
        hit = self.m.lookup(key_tuple(k[0]))
        assert bool(res.found[0]) == (hit is not None)
        if hit:
            self.t.touch(res.index, [nbytes], [flags], now=self.now)
            self.m.touch(key_tuple(k[0]), flags, self.now)

    @rule(seconds=st.sampled_from([0, 1, 4, 5, 9, 10, 29, 30, 59, 60, 179, 180]))
    def advance(self, seconds):
        self.now += seconds * NS

    @rule(budget=st.integers(1, 15))
    def sweep(self, budget):
        removed, examined = self.t.sweep(self.now, budget)
        assert examined == min(budget, CAP // 2)
        assert removed == self.m.sweep(self.now, budget)

    @rule(vif=st.integers(0, 2), limit=st.integers(0, 3))
    def vif_quota(self, vif, limit):
        self.t.set_quota(vif=vif, limit=limit)
        self.m.quota["vif"][vif] = limit

    @rule(vrf=st.integers(1, 3), limit=st.integers(0, 3))
    def vrf_quota(self, vrf, limit):
        self.t.set_quota(vrf=vrf, limit=limit)
        self.m.quota["vrf"][vrf] = limit

    @invariant()
    def same_table(self):
        if not hasattr(self, "t"):
            return
        idx, ent, tm = self.t.dump()
        got = {}
        for i, e, x in zip(idx, ent, tm):
            got[key_tuple(e["key"])] = (int(i), int(e["nh"]), int(e["vif"]), int(e["action"]),
                                        int(e["tcp"]), int(x["last_seen"]))
        want = {}
        for p in self.m.pairs.values():
            want[p.fwd] = (2 * p.slot, p.nh, p.vif, p.action, p.tcp[0], p.last[0])
            want[p.rev] = (2 * p.slot + 1, p.rev_nh, p.vif, p.action, p.tcp[1], p.last[1])
        assert got == want
        s = self.t.stats()
        assert s["entries"] == 2 * len(self.m.pairs)
        for v in range(3):
            assert self.t.count(vif=v) == self.m.count("vif", v)
        for v in range(1, 4):
            assert self.t.count(vrf=v) == self.m.count("vrf", v)
        for p in self.m.pairs.values():
            assert self.t.pair_expired(p.slot, self.now) == self.m.expired(p, self.now)


TestFlowTableMatchesModel = FlowMachine.TestCase
TestFlowTableMatchesModel.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)


def test_lookup_of_unknown_keys_is_a_counted_miss():
    t = FlowTable(32, TO)
    res = t.lookup(np.concatenate([key_of((1, "tcp", 1, 1, False)), key_of((1, "udp", 1, 1, True))]))
    assert not res.found.any() and (res.index == 0xFFFFFFFF).all()
    assert t.stats()["misses"] == 2
