"""Flow table: unit and property tests against tests/flow_ref.py."""
import ipaddress

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from vrouter import _ext
from vrouter.flow import (DROP_REASONS, KEY_DTYPE, NONE, NS, FlowTable, Timeouts, check_keys,
                          make_key, make_keys)

from flow_ref import FlowModel, key_tuple, reverse

TO = Timeouts(tcp=180, tcp_close=10, udp=60, icmp=30, other=60, drop=5)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tcp_key(i, vrf=1, v6=False):
    if v6:
        return make_key(vrf, "tcp", f"2001:db8::{i:x}", "2001:db8:ffff::1", 1000 + i % 50000, 443)
    return make_key(vrf, "tcp", str(ipaddress.IPv4Address(0x0A000000 + i)), "192.0.2.1",
                    1000 + i % 50000, 80)


def many_keys(n, vrf=1, proto=17, start=0):
    k = np.zeros(n, KEY_DTYPE)
    k["family"] = 4
    k["proto"] = proto
    k["vrf"] = vrf
    k["src"][:, 10:12] = 255
    k["dst"][:, 10:12] = 255
    ids = np.arange(start, start + n, dtype=np.uint32)
    k["src"][:, 12:] = ids.byteswap().view(np.uint8).reshape(n, 4)
    k["dst"][:, 12:] = (192, 0, 2, 1)
    k["sport"] = 4000
    k["dport"] = 53
    return k


# ------------------------------------------------------------ keys / input

def test_key_struct_is_40_bytes_and_dtypes_mirror_c_structs():
    assert KEY_DTYPE.itemsize == 40
    assert _ext.flow_struct_sizes()["key"] == 40


def test_ipv4_key_is_stored_ipv4_mapped():
    k = make_key(3, "udp", "10.1.2.3", "10.9.9.9", 5, 6)
    assert bytes(k["src"][0]) == bytes(10) + b"\xff\xff" + bytes([10, 1, 2, 3])
    assert k["family"][0] == 4


def test_wrong_family_key_is_refused_with_field_named():
    k = make_key(1, "tcp", "10.0.0.1", "10.0.0.2", 1, 2)
    k["family"] = 6
    with pytest.raises(ValueError, match=r"src.*wrong family"):
        check_keys(k)
    k["family"] = 5
    with pytest.raises(ValueError, match="family"):
        check_keys(k)
    k6 = make_key(1, "tcp", "2001:db8::1", "2001:db8::2", 1, 2)
    k6["family"] = 4
    with pytest.raises(ValueError, match="src"):
        check_keys(k6)


def test_bad_key_shapes_and_dtypes_raise_type_or_value_error():
    t = FlowTable(64, TO)
    with pytest.raises(TypeError, match="dtype"):
        t.lookup(np.zeros(4, np.uint8))
    with pytest.raises(TypeError, match="numpy array"):
        t.lookup([1, 2, 3])
    with pytest.raises(ValueError, match="one-dimensional"):
        t.lookup(np.zeros((2, 2), KEY_DTYPE))
    with pytest.raises(ValueError, match="dst: address family"):
        make_key(1, "tcp", "10.0.0.1", "2001:db8::1")
    with pytest.raises(ValueError, match="proto"):
        make_key(1, "sctp-ish", "10.0.0.1", "10.0.0.2")
    with pytest.raises(ValueError, match="sport"):
        make_key(1, "tcp", "10.0.0.1", "10.0.0.2", 70000, 1)
    with pytest.raises(ValueError, match="action"):
        t.insert_pair(tcp_key(1), 1, action="reject")
    with pytest.raises(ValueError, match="capacity"):
        FlowTable(3)
    with pytest.raises(ValueError, match="timeouts.udp"):
        FlowTable(64, Timeouts(udp=-1))
    with pytest.raises(ValueError, match="vif"):
        t.insert_pairs(many_keys(2), 1, vif=[1, 70000])


def test_reverse_key_swaps_ends_and_maps_icmp_echo_types():
    keys = make_keys([(1, "tcp", "10.0.0.1", "10.0.0.2", 1234, 80),
                      (1, "icmp", "10.0.0.1", "10.0.0.2", 77, 8),
                      (2, "icmp6", "2001:db8::1", "2001:db8::2", 9, 128),
                      (2, 47, "2001:db8::1", "2001:db8::2", 0, 0)])
    t = FlowTable(64, TO)
    rev = t.reverse_keys(keys)
    for a, b in zip(keys, rev):
        assert key_tuple(b) == reverse(key_tuple(a))
    assert rev["dport"][1] == 0 and rev["sport"][1] == 77
    assert rev["dport"][2] == 129


# ------------------------------------------------------------ basic table

def test_pair_insert_is_visible_from_both_ends_with_own_next_hops():
    t = FlowTable(64, TO)
    k = tcp_key(5)
    r = t.insert_pair(k, 11, 22, vif=3, rule_id=9, now=100)
    assert r.reason == "none" and r.index % 2 == 0
    res = t.lookup(np.concatenate([k, t.reverse_keys(k)]))
    assert res.found.all()
    assert list(res.index) == [r.index, r.index + 1]
    assert list(res.nh) == [11, 22] and list(res.rule_id) == [9, 9]
    assert t.stats()["entries"] == 2


def test_duplicate_insert_from_either_end_is_flow_exists():
    t = FlowTable(64, TO)
    k = tcp_key(5)
    assert t.insert_pair(k, 1).reason == "none"
    assert t.insert_pair(k, 1).reason == "flow_exists"
    assert t.insert_pair(t.reverse_keys(k), 1).reason == "flow_exists"
    assert t.stats()["exists"] == 2


def test_self_reverse_key_is_refused_as_bad_key():
    t = FlowTable(64, TO)
    k = make_key(1, "udp", "10.0.0.1", "10.0.0.1", 53, 53)
    assert t.insert_pair(k, 1).reason == "bad_key"


def test_delete_by_reverse_key_removes_both_entries():
    t = FlowTable(64, TO)
    k = tcp_key(5, v6=True)
    t.insert_pair(k, 1, vif=2)
    assert t.delete(t.reverse_keys(k))
    assert not t.lookup(np.concatenate([k, t.reverse_keys(k)])).found.any()
    assert not t.delete(k)
    assert t.count(vif=2) == 0 and t.stats()["entries"] == 0


def test_full_table_refuses_with_table_full_and_keeps_existing_flows():
    t = FlowTable(32, TO)                       # 16 pairs
    keys = many_keys(40)
    idx, reason = t.insert_pairs(keys, np.arange(40))
    names = [DROP_REASONS[r] for r in reason]
    assert names[:16] == ["none"] * 16 and names[16:] == ["table_full"] * 24
    assert (idx[16:] < 0).all()
    res = t.lookup(keys[:16])
    assert res.found.all() and list(res.nh) == list(range(16))
    assert t.stats()["table_full"] == 24
    assert t.delete(keys[0:1])                  # room again
    assert t.insert_pair(keys[20:21], 5).reason == "none"


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2 ** 32 - 1))
def test_bulk_lookup_agrees_with_scalar_lookup(seed):
    rng = np.random.default_rng(seed)
    t = FlowTable(512, TO)
    keys = many_keys(300, start=int(rng.integers(0, 1 << 30)))
    t.insert_pairs(keys[:200], 1)
    for i in rng.choice(200, 50, replace=False):
        t.delete(keys[i:i + 1])
    probe = np.concatenate([keys, t.reverse_keys(keys)])[rng.permutation(600)]
    bulk = t.lookup(probe)
    scal = t.lookup_scalar(probe)
    assert (np.where(bulk.found, bulk.index, NONE) == scal).all()


def test_colliding_keys_overflowing_their_buckets_are_table_full_not_a_hang():
    t = FlowTable(1024, TO)                     # 256 buckets
    # Find keys whose both candidate buckets are among two buckets (brute
    # force over the C hash): 16 slots, so at most 16 of them fit.
    cands = many_keys(1 << 20, start=7)
    h = _ext_hashes(cands)
    b1 = h & 255
    b2 = ((h * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)) & 255
    sel = np.flatnonzero(np.isin(b1, (3, 4)) & np.isin(b2, (3, 4)))
    assert len(sel) >= 18, len(sel)
    keys = cands[sel[:18]]
    idx, reason = t.insert_pairs(keys, 1)
    names = [DROP_REASONS[r] for r in reason]
    assert names.count("table_full") >= 2 and names.count("none") <= 16
    ok = keys[idx >= 0]
    assert t.lookup(ok).found.all()
    assert t.stats()["table_full"] == names.count("table_full")
    # Spilled keys (second bucket) stay findable by the bulk path, which
    # stops at the first bucket only when nothing spilled from it.
    probe = cands[sel]
    for i in range(0, len(ok), 3):
        assert t.delete(ok[i:i + 1])
    res = t.lookup(probe)
    assert (np.where(res.found, res.index, NONE) == t.lookup_scalar(probe)).all()
    assert t.insert_pairs(keys, 1)[0].max() >= 0       # freed slots are reused
    res = t.lookup(probe)
    assert (np.where(res.found, res.index, NONE) == t.lookup_scalar(probe)).all()


def _ext_hashes(keys):
    import vrouter._ext as e
    return e.flow_hashes(keys)


def test_memory_exhausted_on_create_raises_memory_error_and_existing_table_keeps_working():
    t = FlowTable(64, TO)
    t.insert_pair(tcp_key(1), 4)
    for n in range(0, 9):
        _ext.mem_fail_after(n)
        try:
            with pytest.raises(MemoryError):
                FlowTable(1 << 16, TO)
        finally:
            _ext.mem_fail_after(-1)
    assert t.lookup(tcp_key(1)).nh[0] == 4
    assert t.insert_pair(tcp_key(2), 5).reason == "none"


# ------------------------------------------------------------ quotas

def test_vif_quota_refuses_new_flows_of_that_vif_only():
    t = FlowTable(256, TO, quota_per_vif=3)
    keys = many_keys(10)
    idx, reason = t.insert_pairs(keys[:5], 1, vif=7)
    assert [DROP_REASONS[r] for r in reason] == ["none"] * 3 + ["vif_quota"] * 2
    assert t.insert_pair(keys[5:6], 1, vif=8).reason == "none"       # other vif fine
    assert t.lookup(keys[:3]).found.all()                            # its own flows work
    assert t.count(vif=7) == 3 and t.stats()["vif_quota"] == 2
    t.delete(keys[0:1])
    assert t.insert_pair(keys[6:7], 1, vif=7).reason == "none"       # room after a delete


def test_vrf_quota_and_per_id_override():
    t = FlowTable(256, TO)
    t.set_quota(vrf=2, limit=2)
    k2 = many_keys(4, vrf=2)
    _, reason = t.insert_pairs(k2, 1)
    assert [DROP_REASONS[r] for r in reason] == ["none", "none", "vrf_quota", "vrf_quota"]
    _, reason = t.insert_pairs(many_keys(4, vrf=3), 1)
    assert all(DROP_REASONS[r] == "none" for r in reason)
    t.set_quota(vrf=2, limit=0)                                      # unlimited again
    assert t.insert_pair(k2[2:3], 1).reason == "none"


# ------------------------------------------------------------ aging

@pytest.mark.parametrize("proto,timeout", [("tcp", 180), ("udp", 60), ("icmp", 30), (47, 60)])
def test_idle_pair_expires_after_its_protocol_timeout(proto, timeout):
    t = FlowTable(64, TO)
    k = make_key(1, proto, "10.0.0.1", "10.0.0.2", 5, 8)
    t.insert_pair(k, 1, now=1000)
    assert t.sweep(1000 + timeout * NS - 1, 32) == (0, 32)
    assert t.lookup(k).found[0]
    assert t.sweep(1000 + timeout * NS, 32)[0] == 1
    assert not t.lookup(k).found[0]
    assert t.stats()["aged"] == 1


def test_traffic_on_the_reverse_entry_keeps_the_pair_alive():
    t = FlowTable(64, TO)
    k = tcp_key(1)
    r = t.insert_pair(k, 1, now=0)
    t.touch([r.index + 1], [100], [0x10], now=100 * NS)
    assert t.sweep(200 * NS, 32)[0] == 0
    assert t.sweep(280 * NS, 32)[0] == 1


def test_fin_or_rst_switches_to_the_close_timeout():
    t = FlowTable(64, TO)
    a, b = tcp_key(1), tcp_key(2)
    ia = t.insert_pair(a, 1, now=0).index
    ib = t.insert_pair(b, 1, now=0).index
    t.touch([ia, ib + 1], [60, 60], [0x11, 0x04], now=NS)   # FIN+ACK / RST
    assert t.get(ia)[0]["tcp"] & 4 and t.get(ib + 1)[0]["tcp"] & 8
    assert t.sweep(11 * NS - 1, 32)[0] == 0
    assert t.sweep(11 * NS, 32)[0] == 2


def test_tcp_handshake_reaches_established():
    t = FlowTable(64, TO)
    i = t.insert_pair(tcp_key(1), 1).index
    t.touch([i, i + 1, i], [60, 60, 60], [0x02, 0x12, 0x10], now=5)
    st_f = t.get(i)[0]["tcp"]
    assert st_f & 1 and st_f & 2
    _, tm = t.get(i)
    assert tm["packets"] == 2 and tm["bytes"] == 120 and tm["last_seen"] == 5


def test_drop_flows_use_the_short_drop_timeout():
    t = FlowTable(64, TO)
    t.insert_pair(tcp_key(1), 0, action="drop", now=0)
    assert t.lookup(tcp_key(1)).action[0] == 1
    assert t.sweep(5 * NS, 32)[0] == 1


@FAST
@given(budget=st.integers(1, 40), n=st.integers(0, 60))
def test_sweep_examines_at_most_budget_slots_per_call(budget, n):
    t = FlowTable(128, TO)                      # 64 pair slots
    t.insert_pairs(many_keys(n), 1, now=0)
    removed, examined = t.sweep(10 ** 15, budget)
    assert examined == min(budget, 64)
    assert removed <= examined
    # all are expired; a full pass of ceil(64/budget) calls removes them all
    calls = 1
    while t.stats()["entries"]:
        t.sweep(10 ** 15, budget)
        calls += 1
        assert calls <= -(-64 // budget)


# ------------------------------------------------------------ model check

key_strategy = st.tuples(st.integers(1, 2), st.sampled_from([1, 6, 17, 58, 47]),
                         st.integers(0, 5), st.integers(0, 3), st.booleans())


def build_key(vrf, proto, a, port, v6):
    if proto == 58 or v6:
        proto = 58 if proto == 1 else proto
        return make_key(vrf, proto, f"2001:db8::{a + 1}", f"2001:db8::{(a * 7) % 5 + 10}",
                        port, [0, 8, 128, 129][port])
    proto = 1 if proto == 58 else proto
    return make_key(vrf, proto, f"10.0.0.{a + 1}", f"10.0.1.{(a * 3) % 4 + 1}", port + 1, [0, 8, 80, 53][port])


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["ins", "del", "touch", "sweep"]), key_strategy,
                              st.integers(0, 3), st.integers(0, 100)), max_size=60),
       quota=st.integers(0, 3))
def test_random_operations_match_the_reference_model(ops, quota):
    cap = 16
    to_ns = TO.as_ns()
    t = FlowTable(cap, TO, quota_per_vif=quota)
    m = FlowModel(cap, to_ns, quota_vif=quota)
    now = 0
    for op, kspec, vif, arg in ops:
        k = build_key(*kspec)
        kt = key_tuple(k[0])
        now += arg * NS
        if op == "ins":
            expect = m.refusal(kt, vif)
            r = t.insert_pair(k, arg, vif=vif, now=now)
            assert r.reason == (expect or "none")
            if expect is None:
                m.insert(kt, r.index // 2, arg, arg, vif, 0, 0, 0, now)
        elif op == "del":
            hit = m.lookup(kt)
            assert t.delete(k) == (hit is not None)
            if hit:
                m.remove(hit[0])
        elif op == "touch":
            res = t.lookup(k)
            if res.found[0]:
                t.touch(res.index, [64], [arg & 0x17], now=now)
                m.touch(kt, arg & 0x17, now)
        else:
            assert t.sweep(now, arg % 10 + 1)[0] == m.sweep(now, arg % 10 + 1)
        # whole-table comparison
        idx, ent, _ = t.dump()
        got = {key_tuple(e["key"]): (int(i), int(e["nh"]), int(e["vif"])) for i, e in zip(idx, ent)}
        want = {}
        for p in m.pairs.values():
            want[p.fwd] = (2 * p.slot, p.nh, p.vif)
            want[p.rev] = (2 * p.slot + 1, p.rev_nh, p.vif)
        assert got == want
        assert t.stats()["entries"] == 2 * len(m.pairs)
        for v in range(4):
            assert t.count(vif=v) == m.count("vif", v)


# ------------------------------------------------------------ iteration / stats

def test_flows_filters_by_vrf_vif_protocol_and_address():
    t = FlowTable(256, TO)
    t.insert_pair(make_key(1, "tcp", "10.0.0.1", "10.0.0.2", 1, 80), 1, vif=1)
    t.insert_pair(make_key(2, "udp", "10.0.0.3", "10.0.0.2", 1, 53), 1, vif=2)
    t.insert_pair(make_key(2, "tcp", "2001:db8::1", "2001:db8::2", 1, 443), 1, vif=2)
    assert len(t.flows()[0]) == 6
    assert len(t.flows(vrf=2)[0]) == 4
    assert len(t.flows(vif=1)[0]) == 2
    assert len(t.flows(proto="udp")[0]) == 2
    assert len(t.flows(addr="10.0.0.2")[0]) == 4
    assert len(t.flows(vrf=2, proto="tcp", addr="2001:db8::2")[0]) == 2


def test_statistics_count_hits_misses_and_hit_rate():
    t = FlowTable(64, TO)
    t.insert_pair(tcp_key(1), 1)
    t.lookup(np.concatenate([tcp_key(1), tcp_key(2), tcp_key(3), tcp_key(1)]))
    s = t.stats()
    assert (s["hits"], s["misses"], s["inserts"]) == (2, 2, 1)
    assert s["hit_rate"] == 0.5
    t.lookup(tcp_key(1), worker=5)              # counters per worker, summed
    assert t.stats()["hits"] == 3
