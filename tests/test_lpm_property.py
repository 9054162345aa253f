"""Property tests: for random clustered prefix sets in several VRFs, every lookup path of every
implementation (C single lookup, every C lookup_batch impl, the Python reference) agrees with a
linear scan over the routes (lpm_ref.linear_lookup). Example counts: the hypothesis profile in conftest.py."""
import ipaddress

import numpy as np
from hypothesis import given, settings

import lpm_ref
from lpm_ref import BATCH_IMPLS, BITS, MAX_VRF, NO_ROUTE, address_forms, edge_keys, keys_array, prefix_forms

st, base_prefixes, clustered_prefix, next_hops, vrfs = lpm_ref.strategies()


def draw_routes(data, family, max_prefixes=30):
    """A dict vrf -> {(net, len): nh} where the same prefixes recur across VRFs with different next hops."""
    bits = BITS[family]
    bases = data.draw(base_prefixes(bits), label="bases")
    prefixes = data.draw(st.lists(clustered_prefix(bits, bases), min_size=1, max_size=max_prefixes,
                                  unique=True), label="prefixes")
    routes = {}
    for key in prefixes:
        for vrf in data.draw(st.sets(vrfs, min_size=1, max_size=3), label="vrfs of prefix"):
            routes.setdefault(vrf, {})[key] = data.draw(next_hops, label="nh")
    return bases, routes


def draw_keys(data, family, bases, routes, n_random=40):
    """Edge keys of every prefix (first, last, +-1), random keys, random keys under each base."""
    bits = BITS[family]
    keys = set()
    for r in routes.values():
        keys |= edge_keys(r, bits)
    keys |= set(data.draw(st.lists(st.integers(0, (1 << bits) - 1), max_size=n_random), label="random keys"))
    for addr, blen in bases:
        hosts = data.draw(st.lists(st.integers(0, lpm_ref.host_mask(bits, blen)), max_size=8), label="in-base")
        keys |= {addr | h for h in hosts}
    return sorted(keys)


def build(table, family, routes, data, via_batch):
    """Fill table from routes with single inserts (rotating the prefix spellings) or insert_batch."""
    for vrf, r in routes.items():
        items = sorted(r.items())
        if via_batch:
            table.insert_batch(vrf, keys_array(family, [k[0] for k, _ in items]),
                               np.array([k[1] for k, _ in items], dtype=np.uint8),
                               np.array([nh for _, nh in items], dtype=np.uint32))
        else:
            for i, (key, nh) in enumerate(items):
                assert table.insert(vrf, prefix_forms(family, key)[i % 3], nh) is True


def assert_lookups_match_linear_scan(table, family, routes, keys, extra_vrfs=()):
    bits = BITS[family]
    karr = keys_array(family, keys)
    for vrf in sorted(set(routes) | set(extra_vrfs)):
        r = routes.get(vrf, {})
        want = np.array([lpm_ref.linear_lookup(r, k, bits) for k in keys], dtype=np.uint32)
        # The same keys shuffled into a longer, odd-sized burst, so that vectorised variants run their
        # multi-lane body and not only their scalar tail.
        idx = np.random.default_rng(len(keys)).integers(0, len(keys), 4 * len(keys) + 37)
        for impl in BATCH_IMPLS:
            got = table.lookup_batch(vrf, karr, impl=impl)
            assert got.dtype == np.uint32 and got.shape == (len(keys),)
            bad = np.nonzero(got != want)[0]
            assert not bad.size, (f"vrf {vrf} impl={impl}: key {keys[bad[0]]:#x} got {got[bad[0]]:#x} "
                                  f"want {want[bad[0]]:#x}")
            long_got = table.lookup_batch(vrf, karr[idx], impl=impl)
            bad = np.nonzero(long_got != want[idx])[0]
            assert not bad.size, (f"vrf {vrf} impl={impl} (burst of {len(idx)}): key {keys[idx[bad[0]]]:#x} "
                                  f"got {long_got[bad[0]]:#x} want {want[idx[bad[0]]]:#x}")
        for i, k in enumerate(keys):
            got = table.lookup(vrf, address_forms(family, k)[i % 3])
            assert got == want[i], f"vrf {vrf} lookup({k:#x}) = {got:#x}, want {want[i]:#x}"


def assert_routes_match(table, family, routes):
    net_cls = ipaddress.IPv4Network if family == 4 else ipaddress.IPv6Network
    for vrf, r in routes.items():
        assert table.routes(vrf) == [(net_cls(k), nh) for k, nh in sorted(r.items())]
        assert table.count(vrf) == len(r)
    assert table.count() == len(table) == sum(len(r) for r in routes.values())
    assert table.vrfs() == sorted(v for v, r in routes.items() if r)


@given(data=st.data())
def test_lookup_matches_linear_scan_for_clustered_prefixes_in_several_vrfs(impl, family, data):
    bases, routes = draw_routes(data, family)
    table = impl.make(family)
    build(table, family, routes, data, via_batch=data.draw(st.booleans(), label="via_batch"))
    keys = draw_keys(data, family, bases, routes)
    # A VRF with no routes (but the same prefixes elsewhere) must answer NO_ROUTE everywhere.
    empty_vrf = next(v for v in (3, 5, MAX_VRF - 1) if v not in routes)
    assert_lookups_match_linear_scan(table, family, routes, keys, extra_vrfs=[empty_vrf])
    assert (table.lookup_batch(empty_vrf, keys_array(family, keys)) == NO_ROUTE).all()
    assert_routes_match(table, family, routes)
    for vrf, r in routes.items():
        for key, nh in r.items():
            assert table.get(vrf, prefix_forms(family, key)[key[1] % 3]) == nh


@given(data=st.data())
def test_delete_restores_covering_less_specific_route(impl, family, data):
    bases, routes = draw_routes(data, family)
    table = impl.make(family)
    build(table, family, routes, data, via_batch=False)
    gen = table.generation
    remaining = {v: dict(r) for v, r in routes.items()}
    for vrf, r in routes.items():
        doomed = data.draw(st.lists(st.sampled_from(sorted(r)), unique=True), label=f"delete in {vrf}")
        if data.draw(st.booleans(), label="delete_batch"):
            n = table.delete_batch(vrf, keys_array(family, [k[0] for k in doomed]),
                                   np.array([k[1] for k in doomed], dtype=np.uint8))
            assert n == len(doomed)
        else:
            for key in doomed:
                assert table.delete(vrf, prefix_forms(family, key)[key[1] % 3]) is True
        for key in doomed:
            del remaining[vrf][key]
            assert table.delete(vrf, key) is False          # already gone
            assert table.get(vrf, key) is None
    removed_any = any(len(remaining[v]) != len(routes[v]) for v in routes)
    assert (table.generation > gen) == removed_any
    keys = draw_keys(data, family, bases, routes)           # edges of the deleted prefixes too
    assert_lookups_match_linear_scan(table, family, remaining, keys)
    assert_routes_match(table, family, remaining)


@given(data=st.data())
def test_insert_batch_with_duplicates_equals_sequential_inserts_later_wins(impl, family, data):
    bits = BITS[family]
    bases = data.draw(base_prefixes(bits), label="bases")
    entries = data.draw(st.lists(st.tuples(clustered_prefix(bits, bases), next_hops), min_size=1, max_size=40),
                        label="entries")
    entries += data.draw(st.lists(st.sampled_from(entries), max_size=10), label="duplicates")
    entries = data.draw(st.permutations(entries), label="order")
    vrf = data.draw(vrfs, label="vrf")
    batched, sequential = impl.make(family), impl.make(family)
    batched.insert_batch(vrf, keys_array(family, [k[0] for k, _ in entries]),
                         np.array([k[1] for k, _ in entries], dtype=np.uint8),
                         np.array([nh for _, nh in entries], dtype=np.uint32))
    for key, nh in entries:
        sequential.insert(vrf, key, nh)
    expect = dict(entries)                                   # dict(): later duplicates win
    assert batched.routes(vrf) == sequential.routes(vrf)
    assert_routes_match(batched, family, {vrf: expect})
    keys = draw_keys(data, family, bases, {vrf: expect}, n_random=10)
    assert_lookups_match_linear_scan(batched, family, {vrf: expect}, keys)


@given(data=st.data())
def test_replace_changes_answer_only_where_replaced_route_is_longest_match(impl, family, data):
    bases, routes = draw_routes(data, family, max_prefixes=15)
    table = impl.make(family)
    build(table, family, routes, data, via_batch=True)
    vrf = data.draw(st.sampled_from(sorted(routes)), label="vrf")
    key = data.draw(st.sampled_from(sorted(routes[vrf])), label="replaced")
    nh = data.draw(next_hops, label="new nh")
    gen = table.generation
    assert table.insert(vrf, key, nh) is False
    assert (table.generation > gen) == (nh != routes[vrf][key])   # same nh: a no-op, generation kept
    routes[vrf][key] = nh
    assert table.get(vrf, key) == nh
    keys = draw_keys(data, family, bases, routes, n_random=10)
    assert_lookups_match_linear_scan(table, family, routes, keys)
    assert_routes_match(table, family, routes)


def test_every_selectable_batch_impl_is_compared_by_these_tests():
    """Habit 4: every lookup variant vrouter.lpm lets a caller select is one the tests above compare, and
    the three the API promises are among them."""
    from conftest import c_lpm
    lpm = c_lpm()
    assert set(lpm_ref.SPEC_IMPLS) <= set(lpm.IMPLS)
    assert set(BATCH_IMPLS) == set(lpm.IMPLS) | set(lpm_ref.SPEC_IMPLS)


# ---- adversarial inputs, one test each ----
def full_chain(family, addr):
    """Every prefix length 0..bits along one address: the deepest nesting there is."""
    bits = BITS[family]
    return {(addr & lpm_ref.net_mask(bits, plen), plen): 1000 + plen for plen in range(bits + 1)}


def diverging_keys(family, addr):
    """For each bit position, the address with that bit flipped: it shares exactly that many leading bits."""
    bits = BITS[family]
    return [addr] + [addr ^ (1 << (bits - 1 - i)) for i in range(bits)]


def chain_answers(family, lens_left):
    """What diverging_keys must find in a chain of which the lengths lens_left remain: key 0 shares all bits
    with the chain's address, key i >= 1 exactly i - 1; each finds the longest remaining length it shares."""
    bits = BITS[family]
    out = []
    for common in [bits] + list(range(bits)):
        fit = [plen for plen in lens_left if plen <= common]
        out.append(1000 + max(fit) if fit else NO_ROUTE)
    return out


@settings(max_examples=max(5, settings().max_examples // 3))
@given(addr=st.integers(0, (1 << 128) - 1), order=st.randoms(use_true_random=False))
def test_chain_of_every_prefix_length_answers_by_common_leading_bits(impl, family, addr, order):
    bits = BITS[family]
    addr &= (1 << bits) - 1
    chain = full_chain(family, addr)
    table = impl.make(family)
    for key, nh in chain.items():
        table.insert(5, key, nh)
    keys = diverging_keys(family, addr)
    karr = keys_array(family, keys)
    assert [table.lookup(5, k) for k in keys] == chain_answers(family, range(bits + 1))
    # Delete the whole chain in random order; after each delete every key falls back to the next covering
    # route still there.
    doomed = list(chain)
    order.shuffle(doomed)
    left = set(range(bits + 1))
    for step, key in enumerate(doomed):
        assert table.delete(5, key) is True
        left.discard(key[1])
        if not impl.is_c and step % 16:
            continue                                  # the model is slow at 129 lengths; sample its steps
        want = chain_answers(family, left)
        for impl_name in BATCH_IMPLS if impl.is_c else ("auto",):
            assert table.lookup_batch(5, karr, impl=impl_name).tolist() == want, (impl_name, sorted(left))
    assert table.count(5) == 0


def test_batch_of_one_key_repeated_gets_one_answer_everywhere(impl, family):
    bits = BITS[family]
    addr = (0x0A010203 if family == 4 else 0x20010DB8 << 96 | 0x1234)
    table = impl.make(family)
    for key, nh in full_chain(family, addr).items():
        table.insert(0, key, nh)
    for n in (1, 15, 16, 17, 64, 10_001):
        karr = keys_array(family, [addr]) if n == 1 else np.repeat(keys_array(family, [addr]), n, axis=0)
        for impl_name in BATCH_IMPLS:
            got = table.lookup_batch(0, karr, impl=impl_name)
            assert got.shape == (n,) and (got == 1000 + bits).all(), (impl_name, n)


def test_batch_keys_all_missing_and_all_default_route(impl, family):
    table = impl.make(family)
    rng = np.random.default_rng(3)
    ints = [int(x) >> (64 - BITS[family]) if family == 4 else int(x) << 64 | 1
            for x in rng.integers(0, 1 << 63, 1000, dtype=np.uint64)]
    karr = keys_array(family, ints)
    for impl_name in BATCH_IMPLS:
        assert (table.lookup_batch(0, karr, impl=impl_name) == NO_ROUTE).all()
    table.insert(0, (0, 0), 0)                                 # next hop 0 is a real next hop
    for impl_name in BATCH_IMPLS:
        assert (table.lookup_batch(0, karr, impl=impl_name) == 0).all()
        assert (table.lookup_batch(1, karr, impl=impl_name) == NO_ROUTE).all()
