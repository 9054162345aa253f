"""Stateful tests: random sequences of insert / replace / delete (present and absent) / insert_batch (good
and poisoned) / delete_batch / lookups / allocation failures on the C Lpm4 and Lpm6, across several VRFs,
compared with the Python reference model after every step."""
import numpy as np
import pytest
from hypothesis import event, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import lpm_ref
from conftest import c_lpm
from lpm_ref import BATCH_IMPLS, BITS, NO_ROUTE, VRFS, address_forms, edge_keys, keys_array, prefix_forms

st, _, clustered_prefix, next_hops, vrfs = lpm_ref.strategies()

# Fixed bases per family: the clustered strategy mutates them, so routes nest, share parents and collide
# across VRFs; 0.0.0.0/0 (::/0) as a base yields default and far-apart routes.
BASES = {
    4: [(0x0A000000, 8), (0xC0A80000, 16), (0xC6336400, 24), (0, 0), (0xFFFFFF00, 24)],
    6: [(0x20010DB8 << 96, 32), (0x20010DB8ABCD << 80, 48), (0, 0), ((1 << 128) - (1 << 64), 64)],
}


def ext():
    c_lpm()
    import vrouter._ext as e
    return e


class LpmMachine(RuleBasedStateMachine):
    family = 4

    def __init__(self):
        super().__init__()
        lpm = c_lpm()
        self.table = lpm.Lpm4() if self.family == 4 else lpm.Lpm6()
        self.model = lpm_ref.REF_CLASSES[self.family]()
        self.bits = BITS[self.family]
        self.gen = self.table.generation
        self.probe_keys = set()

    # ---- helpers ----
    def existing(self):
        return [(v, k) for v in self.model.vrfs() for k in sorted(self.model.route_dict(v))]

    def changed(self, did_change):
        """Generation must rise exactly when the table changed, and never move otherwise."""
        gen = self.table.generation
        if did_change:
            assert gen > self.gen, "table changed but generation did not increase"
        else:
            assert gen == self.gen, "generation moved although the table did not change"
        self.gen = gen

    def snapshot(self):
        keys = sorted(self.probe_keys)
        karr = keys_array(self.family, keys[::max(1, len(keys) // 64)])
        return (self.table.generation, len(self.table), self.table.vrfs(),
                {v: self.table.routes(v) for v in VRFS},
                {v: self.table.lookup_batch(v, karr).tolist() for v in VRFS})

    def prefix(self):
        return clustered_prefix(self.bits, BASES[self.family])

    def batch_args(self, keys):
        return (keys_array(self.family, [k[0] for k in keys]), np.array([k[1] for k in keys], dtype=np.uint8))

    # ---- rules ----
    @rule(vrf=vrfs, data=st.data(), nh=next_hops)
    def insert(self, vrf, data, nh):
        key = data.draw(self.prefix(), label="prefix")
        form = data.draw(st.sampled_from(prefix_forms(self.family, key)), label="spelling")
        was_new = self.model.get(vrf, key) is None
        changed = was_new or self.model.get(vrf, key) != nh
        assert self.table.insert(vrf, form, nh) is was_new
        self.model.insert(vrf, key, nh)
        self.probe_keys |= edge_keys([key], self.bits)
        self.changed(changed)

    @precondition(lambda self: len(self.model) > 0)
    @rule(data=st.data(), nh=next_hops, same=st.booleans())
    def replace(self, data, nh, same):
        vrf, key = data.draw(st.sampled_from(self.existing()), label="route")
        if same:
            nh = self.model.get(vrf, key)
        assert self.table.insert(vrf, key, nh) is False
        changed = self.model.get(vrf, key) != nh
        self.model.insert(vrf, key, nh)
        self.changed(changed)

    @precondition(lambda self: len(self.model) > 0)
    @rule(data=st.data())
    def delete_present(self, data):
        vrf, key = data.draw(st.sampled_from(self.existing()), label="route")
        form = data.draw(st.sampled_from(prefix_forms(self.family, key)), label="spelling")
        assert self.table.delete(vrf, form) is True
        self.model.delete(vrf, key)
        self.changed(True)
        assert self.table.get(vrf, key) is None

    @rule(vrf=vrfs, data=st.data())
    def delete_maybe_absent(self, vrf, data):
        key = data.draw(self.prefix(), label="prefix")
        expect = self.model.delete(vrf, key)
        assert self.table.delete(vrf, key) is expect
        self.changed(expect)

    @rule(vrf=vrfs, data=st.data())
    def lookup_single_and_every_batch_impl(self, vrf, data):
        extra = data.draw(st.lists(st.integers(0, (1 << self.bits) - 1), max_size=8), label="random keys")
        keys = sorted(self.probe_keys | set(extra))
        if not keys:
            return
        want = np.array([self.model.lookup(vrf, k) for k in keys], dtype=np.uint32)
        karr = keys_array(self.family, keys)
        for impl in BATCH_IMPLS:
            got = self.table.lookup_batch(vrf, karr, impl=impl)
            np.testing.assert_array_equal(got, want, err_msg=f"impl={impl}")
        sample = data.draw(st.lists(st.sampled_from(keys), max_size=6), label="single lookups")
        for k in sample:
            form = data.draw(st.sampled_from(address_forms(self.family, k)), label="address spelling")
            assert self.table.lookup(vrf, form) == self.model.lookup(vrf, k)

    @rule(vrf=vrfs, data=st.data())
    def insert_batch(self, vrf, data):
        fresh = data.draw(st.lists(st.tuples(self.prefix(), next_hops), max_size=12), label="entries")
        old = [(k, data.draw(next_hops)) for v, k in self.existing() if v == vrf][:4]
        entries = data.draw(st.permutations(fresh + old), label="order")
        addrs, lens = self.batch_args([k for k, _ in entries])
        nhs = np.array([nh for _, nh in entries], dtype=np.uint32)
        before = dict(self.model.route_dict(vrf))
        self.table.insert_batch(vrf, addrs, lens, nhs)
        self.model.insert_batch(vrf, addrs, lens, nhs)
        self.changed(self.model.route_dict(vrf) != before)
        self.probe_keys |= edge_keys([k for k, _ in entries], self.bits)

    @rule(vrf=vrfs, data=st.data(), bad=st.sampled_from(["host_bits", "plen", "nh"]))
    def insert_batch_with_one_bad_entry_applies_nothing(self, vrf, data, bad):
        entries = data.draw(st.lists(st.tuples(self.prefix(), next_hops), min_size=1, max_size=10), label="ok")
        idx = data.draw(st.integers(0, len(entries) - 1), label="bad index")
        addrs, lens = self.batch_args([k for k, _ in entries])
        nhs = np.array([nh for _, nh in entries], dtype=np.uint32)
        if bad == "plen":
            lens[idx] = self.bits + 1
        elif bad == "nh":
            nhs[idx] = NO_ROUTE
        else:
            if entries[idx][0][1] == self.bits:
                lens[idx] = self.bits - 1
            new_len = int(lens[idx])
            # Set the lowest host bit of the (possibly shortened) prefix.
            if self.family == 4:
                addrs[idx] |= np.uint32(1 << (31 - new_len))
            else:
                byte, bit = divmod(new_len, 8)
                addrs[idx, byte] |= np.uint8(0x80 >> bit)
        before = self.snapshot()
        with pytest.raises(ValueError, match=rf"\b{idx}\b"):
            self.table.insert_batch(vrf, addrs, lens, nhs)
        assert self.snapshot() == before
        self.changed(False)

    @rule(vrf=vrfs, data=st.data())
    def delete_batch(self, vrf, data):
        present = [k for v, k in self.existing() if v == vrf]
        keys = data.draw(st.lists(st.sampled_from(present), max_size=8), label="present") if present else []
        keys += data.draw(st.lists(self.prefix(), max_size=4), label="maybe absent")
        keys = data.draw(st.permutations(keys), label="order")
        addrs, lens = self.batch_args(keys)
        expect = self.model.delete_batch(vrf, addrs, lens)
        assert self.table.delete_batch(vrf, addrs, lens) == expect
        self.changed(expect > 0)

    @rule(k=st.one_of(st.integers(0, 5), st.integers(0, 40)),
          op=st.sampled_from(["insert", "delete", "insert_batch", "delete_batch"]), vrf=vrfs, data=st.data())
    def allocation_failure_leaves_table_unchanged(self, k, op, vrf, data):
        entries = data.draw(st.lists(st.tuples(self.prefix(), next_hops), min_size=1, max_size=16), label="entries")
        present = [key for v, key in self.existing() if v == vrf]
        if op in ("delete", "delete_batch") and present:
            entries = [(key, 0) for key in data.draw(st.lists(st.sampled_from(present), min_size=1, max_size=8))]
        addrs, lens = self.batch_args([key for key, _ in entries])
        nhs = np.array([nh for _, nh in entries], dtype=np.uint32)
        key0, nh0 = entries[0]
        calls = {
            "insert": lambda t: t.insert(vrf, key0, nh0),
            "delete": lambda t: t.delete(vrf, key0),
            "insert_batch": lambda t: t.insert_batch(vrf, addrs, lens, nhs),
            "delete_batch": lambda t: t.delete_batch(vrf, addrs, lens),
        }
        e = ext()
        before = self.snapshot()
        try:
            e.mem_fail_after(k)
            result = calls[op](self.table)
        except MemoryError:
            e.mem_fail_after(-1)
            event(f"{op} hit MemoryError")
            assert self.snapshot() == before, f"{op} failed with MemoryError but changed the table"
            self.changed(False)
            return
        finally:
            e.mem_fail_after(-1)
        model_before = self.model.route_dict(vrf)
        expect = calls[op](self.model)
        if op != "insert_batch":                      # insert_batch's return value is not specified
            assert result == expect
        self.changed(self.model.route_dict(vrf) != model_before)
        self.probe_keys |= edge_keys([key for key, _ in entries], self.bits)

    @rule(vrf=vrfs, data=st.data())
    def get_exact_match(self, vrf, data):
        key = data.draw(st.one_of(self.prefix(), st.sampled_from(self.existing() or [(0, (0, 0))]).map(
            lambda vk: vk[1])), label="prefix")
        assert self.table.get(vrf, key) == self.model.get(vrf, key)

    # ---- invariants ----
    @invariant()
    def routes_and_counts_match_model(self):
        assert len(self.table) == len(self.model)
        assert self.table.count() == self.model.count()
        assert self.table.vrfs() == self.model.vrfs()
        for vrf in set(self.model.vrfs()) | {0}:
            assert self.table.count(vrf) == self.model.count(vrf)
            assert self.table.routes(vrf) == self.model.routes(vrf)

    @invariant()
    def probe_lookups_match_model(self):
        keys = sorted(self.probe_keys)
        keys = keys[::max(1, len(keys) // 48)]
        karr = keys_array(self.family, keys)
        for vrf in VRFS:
            want = [self.model.lookup(vrf, k) for k in keys]
            assert self.table.lookup_batch(vrf, karr).tolist() == want, f"vrf {vrf}"

    @invariant()
    def generation_never_moves_on_reads(self):
        assert self.table.generation == self.gen

    @invariant()
    def bytes_used_is_positive_int(self):
        b = self.table.bytes_used()
        assert isinstance(b, int) and b >= 0

    def teardown(self):
        ext().mem_fail_after(-1)


class Lpm4Machine(LpmMachine):
    family = 4


class Lpm6Machine(LpmMachine):
    family = 6


STATEFUL = settings(max_examples=max(10, settings().max_examples * 2 // 3))   # 40 by default, profile-scaled

TestLpm4SequencesMatchModel = Lpm4Machine.TestCase
TestLpm4SequencesMatchModel.settings = STATEFUL
TestLpm6SequencesMatchModel = Lpm6Machine.TestCase
TestLpm6SequencesMatchModel.settings = STATEFUL

