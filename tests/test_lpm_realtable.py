"""The real full routing table (901,899 IPv4 + 160,147 IPv6 prefixes, next hop = line index mod 65536)
loaded with insert_batch answers millions of lookups exactly like pytricia, an independent Patricia-trie
implementation; after deleting a random 10% it still does (delete restores covering routes at scale).

The tests in this module share one loaded table and run in file order; the delete test comes last."""
import socket

import numpy as np
import pytest
import pytricia

import lpm_ref
from conftest import c_lpm
from lpm_ref import BATCH_IMPLS, NO_ROUTE, random_inprefix_v4, random_inprefix_v6

pytestmark = pytest.mark.slow

N_V4, N_V6 = 901_899, 160_147
SEED = 20261123


def pytricia_v4_answers(pt, keys: np.ndarray) -> np.ndarray:
    get = pt.get
    return np.array([get(k, NO_ROUTE) for k in keys.tolist()], dtype=np.uint32)


def pytricia_v6_answers(pt, keys: np.ndarray) -> np.ndarray:
    get, ntop, af = pt.get, socket.inet_ntop, socket.AF_INET6
    raw = np.ascontiguousarray(keys).tobytes()
    return np.array([get(ntop(af, raw[i:i + 16]), NO_ROUTE) for i in range(0, len(raw), 16)], dtype=np.uint32)


def assert_same(got: np.ndarray, want: np.ndarray, keys, what: str):
    bad = np.nonzero(got != want)[0]
    assert not bad.size, (f"{what}: {bad.size} of {len(want)} answers differ from pytricia, first key "
                          f"{keys[bad[0]]!r} got {got[bad[0]]} want {want[bad[0]]}")


class Loaded:
    """The C tables, the pytricia oracles and the parsed file, built once for the module."""

    def __init__(self, path):
        lpm = c_lpm()
        self.full = lpm_ref.load_full_table(path)
        f = self.full
        self.v4_nhs, self.v6_nhs = f.v4_nhs(), f.v6_nhs()
        self.t4, self.t6 = lpm.Lpm4(), lpm.Lpm6()
        self.t4.insert_batch(0, f.v4_addrs, f.v4_lens, self.v4_nhs)
        self.t6.insert_batch(0, f.v6_addrs, f.v6_lens, self.v6_nhs)
        self.pt4, self.pt6 = pytricia.PyTricia(32), pytricia.PyTricia(128)
        for text, nh in zip(f.v4_text, self.v4_nhs.tolist()):
            self.pt4[text] = nh
        for text, nh in zip(f.v6_text, self.v6_nhs.tolist()):
            self.pt6[text] = nh
        self.rng = np.random.default_rng(SEED)


@pytest.fixture(scope="module")
def loaded(fullroute_path):
    return Loaded(fullroute_path)


def test_file_parses_to_documented_prefix_counts(loaded):
    f = loaded.full
    assert (len(f.v4_addrs), len(f.v6_addrs)) == (N_V4, N_V6)
    assert f.v4_text[0] == "1.0.0.0/24" and int(f.v4_addrs[0]) == 0x01000000 and f.v4_lens[0] == 24


def test_pytricia_is_a_trustworthy_ipv6_oracle():
    """pytricia is the independent check for IPv6 too: make sure it really does IPv6 LPM on nested cases."""
    pt = pytricia.PyTricia(128)
    pt["::/0"] = 0
    pt["2001:db8::/32"] = 1
    pt["2001:db8:8000::/33"] = 2
    pt["2001:db8::1/128"] = 3
    pt["2001:db8:ffff:ffff:ffff:ffff:ffff:fffe/127"] = 4
    cases = {"2001:db8::1": 3, "2001:db8::2": 1, "2001:db8:8000::": 2, "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff": 1,
             "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff": 4, "2001:db9::": 0, "::": 0, "ffff::": 0}
    for addr, want in cases.items():
        assert pt.get(addr) == want, addr
    pt.delete("::/0")
    assert pt.get("2001:db9::", NO_ROUTE) == NO_ROUTE
    assert pytricia_v6_answers(pt, np.frombuffer(socket.inet_pton(socket.AF_INET6, "2001:db8::1"), np.uint8)
                               .reshape(1, 16)).tolist() == [3]


def test_full_table_loads_every_prefix(loaded):
    assert loaded.t4.count(0) == len(loaded.t4) == N_V4 == len(loaded.pt4)
    assert loaded.t6.count(0) == len(loaded.t6) == N_V6 == len(loaded.pt6)
    assert loaded.t4.vrfs() == [0] and loaded.t6.vrfs() == [0]
    # Spot-check exact-match get() against the file's own next hops.
    idx = loaded.rng.integers(0, N_V4, 2000)
    for i in idx.tolist():
        assert loaded.t4.get(0, (int(loaded.full.v4_addrs[i]), int(loaded.full.v4_lens[i]))) == loaded.v4_nhs[i]
    for i in loaded.rng.integers(0, N_V6, 500).tolist():
        assert loaded.t6.get(0, loaded.full.v6_text[i]) == loaded.v6_nhs[i]


def test_million_ipv4_lookups_match_pytricia_in_every_impl(loaded):
    f, rng = loaded.full, loaded.rng
    uniform = rng.integers(0, 1 << 32, 1_000_000, dtype=np.uint64).astype(np.uint32)
    inprefix = random_inprefix_v4(rng, f.v4_addrs, f.v4_lens, 500_000)
    keys = np.concatenate([uniform, inprefix, f.v4_addrs])        # every prefix's first address too
    want = pytricia_v4_answers(loaded.pt4, keys)
    assert (want[:len(uniform)] == NO_ROUTE).mean() > 0.2          # ~29% of the space has no route
    for impl in BATCH_IMPLS:
        assert_same(loaded.t4.lookup_batch(0, keys, impl=impl), want, keys, f"lpm4 impl={impl}")
    sample = rng.integers(0, len(keys), 20_000)
    single = np.array([loaded.t4.lookup(0, k) for k in keys[sample].tolist()], dtype=np.uint32)
    assert_same(single, want[sample], keys[sample], "lpm4 single lookup")


def test_ipv6_lookups_match_pytricia_in_every_impl(loaded):
    f, rng = loaded.full, loaded.rng
    inprefix = random_inprefix_v6(rng, f.v6_addrs, f.v6_lens, 300_000)
    uniform = rng.integers(0, 256, (100_000, 16), dtype=np.uint8)
    uniform[:, 0] = 0x20 | (uniform[:, 0] & 0x1F)                  # 2000::/3, where the table lives
    keys = np.concatenate([inprefix, uniform, f.v6_addrs])
    want = pytricia_v6_answers(loaded.pt6, keys)
    assert (want[len(inprefix):len(inprefix) + len(uniform)] == NO_ROUTE).any()
    for impl in BATCH_IMPLS:
        assert_same(loaded.t6.lookup_batch(0, keys, impl=impl), want, keys, f"lpm6 impl={impl}")
    sample = rng.integers(0, len(keys), 5_000)
    single = np.array([loaded.t6.lookup(0, socket.inet_ntop(socket.AF_INET6, keys[i].tobytes()))
                       for i in sample.tolist()], dtype=np.uint32)
    assert_same(single, want[sample], keys[sample], "lpm6 single lookup")


def test_routes_dump_of_full_table_is_sorted_and_complete(loaded):
    routes = loaded.t4.routes(0)
    assert len(routes) == N_V4
    got_addr = np.fromiter((int(n.network_address) for n, _ in routes), dtype=np.uint32, count=N_V4)
    got_len = np.fromiter((n.prefixlen for n, _ in routes), dtype=np.uint8, count=N_V4)
    got_nh = np.fromiter((nh for _, nh in routes), dtype=np.uint32, count=N_V4)
    order = np.lexsort((loaded.full.v4_lens, loaded.full.v4_addrs))
    np.testing.assert_array_equal(got_addr, loaded.full.v4_addrs[order])
    np.testing.assert_array_equal(got_len, loaded.full.v4_lens[order])
    np.testing.assert_array_equal(got_nh, loaded.v4_nhs[order])


def test_memory_failure_during_large_insert_batch_leaves_tables_unchanged(loaded):
    """All-or-nothing at scale: a 50k-route insert_batch into the loaded table, and the whole table into an
    empty one, failing at the k-th allocation for growing k, leave no trace (count, generation, lookups)."""
    import vrouter._ext as e

    lpm = c_lpm()
    f, rng = loaded.full, loaded.rng
    probe = np.concatenate([random_inprefix_v4(rng, f.v4_addrs, f.v4_lens, 100_000),
                            rng.integers(0, 1 << 32, 100_000, dtype=np.uint64).astype(np.uint32)])
    # 50k new /25../32 routes (none already in the table), so that a success can be undone exactly.
    lens = rng.integers(25, 33, 60_000).astype(np.uint64)
    addrs = rng.integers(0, 1 << 32, 60_000, dtype=np.uint64) & \
        ((np.uint64(0xFFFFFFFF) << (np.uint64(32) - lens)) & np.uint64(0xFFFFFFFF))
    packed = np.setdiff1d(np.unique((addrs << np.uint64(8)) | lens),
                          (f.v4_addrs.astype(np.uint64) << np.uint64(8)) | f.v4_lens.astype(np.uint64))[:50_000]
    new_addrs, new_lens = (packed >> np.uint64(8)).astype(np.uint32), (packed & np.uint64(0xFF)).astype(np.uint8)
    new_nhs = np.full(len(packed), 7, dtype=np.uint32)
    jobs = {"50k routes into the loaded table": (loaded.t4, (new_addrs, new_lens, new_nhs)),
            "the whole table into an empty one": (lpm.Lpm4(), (f.v4_addrs, f.v4_lens, loaded.v4_nhs))}
    for what, (table, args) in jobs.items():
        count, gen, vrfs = table.count(), table.generation, table.vrfs()
        before = table.lookup_batch(0, probe)
        failures = 0
        for k in (0, 1, 2, 3, 5, 10, 30, 100, 300, 1000, 3000, 10_000, 100_000):
            try:
                e.mem_fail_after(k)
                table.insert_batch(0, *args)
            except MemoryError:
                failures += 1
                e.mem_fail_after(-1)
                assert (table.count(), table.generation, table.vrfs()) == (count, gen, vrfs), what
                np.testing.assert_array_equal(table.lookup_batch(0, probe), before, err_msg=what)
                continue
            finally:
                e.mem_fail_after(-1)
            assert table.count() == count + len(args[0]), what
            break
        assert failures > 0, f"{what}: insert_batch needed no allocation at all?"
    # Undo the 50k if the last attempt went through, so the tests after this one see the file's table.
    assert loaded.t4.delete_batch(0, new_addrs, new_lens) in (0, len(new_addrs))
    assert loaded.t4.count() == N_V4
    np.testing.assert_array_equal(loaded.t4.lookup_batch(0, probe), pytricia_v4_answers(loaded.pt4, probe))


def test_deleting_random_tenth_restores_covering_routes_at_scale(loaded):
    """Runs last: it mutates the shared tables. Keys under the deleted prefixes must now find the covering
    route (or none), exactly as pytricia after the same deletions."""
    f, rng = loaded.full, loaded.rng
    gen4, gen6 = loaded.t4.generation, loaded.t6.generation
    d4 = rng.choice(N_V4, N_V4 // 10, replace=False)
    d6 = rng.choice(N_V6, N_V6 // 10, replace=False)
    assert loaded.t4.delete_batch(0, f.v4_addrs[d4], f.v4_lens[d4]) == len(d4)
    assert loaded.t6.delete_batch(0, f.v6_addrs[d6], f.v6_lens[d6]) == len(d6)
    for i in d4.tolist():
        loaded.pt4.delete(f.v4_text[i])
    for i in d6.tolist():
        loaded.pt6.delete(f.v6_text[i])
    assert loaded.t4.generation > gen4 and loaded.t6.generation > gen6
    assert loaded.t4.count(0) == N_V4 - len(d4) and loaded.t6.count(0) == N_V6 - len(d6)

    keys4 = np.concatenate([random_inprefix_v4(rng, f.v4_addrs[d4], f.v4_lens[d4], 300_000),   # under deleted
                            random_inprefix_v4(rng, f.v4_addrs, f.v4_lens, 100_000),
                            rng.integers(0, 1 << 32, 100_000, dtype=np.uint64).astype(np.uint32)])
    want4 = pytricia_v4_answers(loaded.pt4, keys4)
    for impl in BATCH_IMPLS:
        assert_same(loaded.t4.lookup_batch(0, keys4, impl=impl), want4, keys4, f"lpm4 after deletes impl={impl}")
    keys6 = np.concatenate([random_inprefix_v6(rng, f.v6_addrs[d6], f.v6_lens[d6], 100_000),
                            random_inprefix_v6(rng, f.v6_addrs, f.v6_lens, 50_000)])
    want6 = pytricia_v6_answers(loaded.pt6, keys6)
    for impl in BATCH_IMPLS:
        assert_same(loaded.t6.lookup_batch(0, keys6, impl=impl), want6, keys6, f"lpm6 after deletes impl={impl}")
    # The deleted routes themselves are gone, exact-match.
    for i in d4[:1000].tolist():
        assert loaded.t4.get(0, (int(f.v4_addrs[i]), int(f.v4_lens[i]))) is None
