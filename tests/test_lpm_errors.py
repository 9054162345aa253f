"""Bad input is rejected with ValueError/TypeError and leaves the table exactly as it was (routes, lookups,
generation); allocation failures raise MemoryError and leave it unchanged too. Each bad input is named in
its test's name or parameter id. Runs against the C tables and the Python reference model."""
import ipaddress

import numpy as np
import pytest

from conftest import Impl, c_lpm
from lpm_ref import BATCH_IMPLS, MAX_NH, MAX_VRF, NO_ROUTE, keys_array

V4 = {"vrf": 7, "good": "10.0.0.0/8", "routes": ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/32"],
      "probe": ["10.1.2.3", "10.1.2.4", "10.2.0.0", "11.0.0.0", "255.255.255.255"]}
V6 = {"vrf": 7, "good": "2001:db8::/32", "routes": ["::/0", "2001:db8::/32", "2001:db8:1::/48", "2001:db8::1/128"],
      "probe": ["2001:db8::1", "2001:db8::2", "2001:db8:1::5", "2001:db9::", "ffff::"]}
CASES = {4: V4, 6: V6}


def filled(t, family):
    for i, p in enumerate(CASES[family]["routes"]):
        t.insert(CASES[family]["vrf"], p, 100 + i)
        t.insert(0, p, 200 + i)
    return t


@pytest.fixture
def table(impl, family):
    return filled(impl.make(family), family)


@pytest.fixture
def c_table(family):
    """Allocation fault injection exists only in the C tables, so these tests use no reference model."""
    c_lpm()
    return filled(Impl("c_table").make(family), family)


def snapshot(t, family):
    c = CASES[family]
    keys = keys_array(family, [int(ipaddress.ip_address(a)) for a in c["probe"]])
    return (t.generation, len(t), t.vrfs(), t.routes(c["vrf"]), t.routes(0),
            [t.lookup_batch(v, keys, impl=i).tolist() for v in (0, c["vrf"]) for i in BATCH_IMPLS])


def assert_rejected(t, family, exc, fn, *args, match=None):
    before = snapshot(t, family)
    with pytest.raises(exc, match=match):
        fn(*args)
    assert snapshot(t, family) == before, "a rejected call changed the table"


# ---------------------------------------------------------------- VRF ids
@pytest.mark.parametrize("vrf", [MAX_VRF + 1, -1, 1 << 32, 1 << 64], ids=["max_vrf_plus_1", "negative", "2e32", "2e64"])
def test_insert_rejects_out_of_range_vrf(table, family, vrf):
    assert_rejected(table, family, ValueError, table.insert, vrf, CASES[family]["good"], 1)


@pytest.mark.parametrize("vrf", [MAX_VRF + 1, -1], ids=["max_vrf_plus_1", "negative"])
def test_every_call_rejects_out_of_range_vrf(table, family, vrf):
    c = CASES[family]
    keys = keys_array(family, [1, 2])
    addrs, lens, nhs = keys_array(family, [0]), np.array([0], np.uint8), np.array([1], np.uint32)
    for fn, args in [(table.delete, (vrf, c["good"])), (table.get, (vrf, c["good"])),
                     (table.lookup, (vrf, c["probe"][0])), (table.lookup_batch, (vrf, keys)),
                     (table.insert_batch, (vrf, addrs, lens, nhs)), (table.delete_batch, (vrf, addrs, lens)),
                     (table.routes, (vrf,)), (table.count, (vrf,))]:
        assert_rejected(table, family, ValueError, fn, *args)


def test_max_vrf_is_a_valid_vrf(table, family):
    assert table.insert(MAX_VRF, CASES[family]["good"], 5) is True
    assert table.lookup(MAX_VRF, CASES[family]["probe"][0]) == 5
    assert MAX_VRF in table.vrfs()


@pytest.mark.parametrize("vrf", ["0", None, 1.0], ids=["str", "None", "float"])
def test_insert_rejects_non_int_vrf_with_type_error(table, family, vrf):
    assert_rejected(table, family, TypeError, table.insert, vrf, CASES[family]["good"], 1)


# ---------------------------------------------------------------- prefix lengths and host bits
def test_insert_rejects_prefix_length_beyond_address_width(table, family):
    bits = 32 if family == 4 else 128
    spelled = "10.0.0.0/33" if family == 4 else "2001:db8::/129"
    assert_rejected(table, family, ValueError, table.insert, 0, spelled, 1)
    assert_rejected(table, family, ValueError, table.insert, 0, (0, bits + 1), 1)
    assert_rejected(table, family, ValueError, table.insert, 0, (0, 255), 1)


def test_insert_rejects_negative_prefix_length_in_tuple(table, family):
    assert_rejected(table, family, ValueError, table.insert, 0, (0, -1), 1)


def test_insert_rejects_tuple_address_beyond_address_width(table, family):
    bits = 32 if family == 4 else 128
    assert_rejected(table, family, ValueError, table.insert, 0, (1 << bits, 0), 1)
    assert_rejected(table, family, ValueError, table.insert, 0, (-1, 0), 1)


@pytest.mark.parametrize("form", ["str", "tuple"])
def test_insert_rejects_host_bits_set_instead_of_normalising(table, family, form):
    spelled = {4: ["10.0.0.1/8", "10.1.2.3/31", "0.0.0.1/0"], 6: ["2001:db8::1/32", "::1/0", "2001:db8::1/127"]}
    for s in spelled[family]:
        net = ipaddress.ip_interface(s)
        arg = s if form == "str" else (int(net.ip), net.network.prefixlen)
        assert_rejected(table, family, ValueError, table.insert, 0, arg, 1)
        assert_rejected(table, family, ValueError, table.delete, 0, arg)
        assert_rejected(table, family, ValueError, table.get, 0, arg)


# ---------------------------------------------------------------- next hops
@pytest.mark.parametrize("nh", [NO_ROUTE, -1, 1 << 32, 1 << 64], ids=["no_route_value", "negative", "2e32", "2e64"])
def test_insert_rejects_next_hop_out_of_range(table, family, nh):
    assert_rejected(table, family, ValueError, table.insert, 0, CASES[family]["good"], nh)


@pytest.mark.parametrize("nh", ["1", None, 1.5], ids=["str", "None", "float"])
def test_insert_rejects_non_int_next_hop_with_type_error(table, family, nh):
    assert_rejected(table, family, TypeError, table.insert, 0, CASES[family]["good"], nh)


def test_largest_valid_next_hop_and_zero_are_accepted(table, family):
    table.insert(3, CASES[family]["good"], MAX_NH)
    assert table.lookup(3, CASES[family]["probe"][0]) == MAX_NH == 0xFFFFFFFE
    table.insert(3, CASES[family]["good"], 0)
    assert table.lookup(3, CASES[family]["probe"][0]) == 0


# ---------------------------------------------------------------- malformed and wrong-family prefixes
MALFORMED = {
    4: ["", "10.0.0.0/", "10.0.0.0/x", "300.0.0.0/8", "10.0.0/8x", "10.0.0.0/8/8", "10.0.0.0.0/8",
        "not-a-prefix", "10.0.0.0/-1", "/8", "10.0.0.0 /8x"],
    6: ["", "2001:db8::/", "2001:db8::/x", "2001:db8:::/32", "2001:db8::g/32", "2001:db8::/32/1",
        "not-a-prefix", "::/-1", "/32", "1:2:3:4:5:6:7:8:9/128"],
}


def test_insert_rejects_malformed_prefix_strings(table, family):
    for s in MALFORMED[family]:
        assert_rejected(table, family, ValueError, table.insert, 0, s, 1)
        assert_rejected(table, family, ValueError, table.delete, 0, s)


def test_table_rejects_prefix_of_the_other_address_family(table, family):
    other = {4: ["2001:db8::/32", "::/0", ipaddress.ip_network("2001:db8::/32")],
             6: ["10.0.0.0/8", "0.0.0.0/0", ipaddress.ip_network("10.0.0.0/8")]}[family]
    for p in other:
        assert_rejected(table, family, ValueError, table.insert, 0, p, 1)
        assert_rejected(table, family, ValueError, table.delete, 0, p)


@pytest.mark.parametrize("prefix", [None, 3.5, b"10.0.0.0/8", ["10.0.0.0", 8], ("10.0.0.0", 8)],
                         ids=["None", "float", "bytes", "list", "tuple_of_str_and_int"])
def test_insert_rejects_prefix_of_wrong_python_type(table, family, prefix):
    assert_rejected(table, family, (TypeError, ValueError), table.insert, 0, prefix, 1)


# ---------------------------------------------------------------- lookups
def test_lookup_rejects_bad_addresses(table, family):
    bits = 32 if family == 4 else 128
    bad = {4: ["10.0.0.256", "10.0.0", "", "2001:db8::1", 1 << 32, -1, ipaddress.ip_address("::1")],
           6: ["2001:db8:::1", "", "10.0.0.1", 1 << 128, -1, ipaddress.ip_address("10.0.0.1")]}[family]
    for a in bad:
        assert_rejected(table, family, ValueError, table.lookup, 0, a)
    assert table.lookup(0, (1 << bits) - 1) == table.lookup(0, 0)     # both under the default route only


@pytest.mark.parametrize("addr", [None, 1.5, b"\x0a\x00\x00"], ids=["None", "float", "bytes_of_wrong_length"])
def test_lookup_rejects_address_of_wrong_python_type(table, family, addr):
    assert_rejected(table, family, (TypeError, ValueError), table.lookup, 0, addr)


def bad_key_arrays(family):
    if family == 4:
        return {"int64": np.zeros(4, np.int64), "uint64": np.zeros(4, np.uint64), "int32": np.zeros(4, np.int32),
                "uint8": np.zeros(4, np.uint8), "2d_uint32": np.zeros((2, 2), np.uint32),
                "float": np.zeros(4, np.float64), "list": [1, 2, 3]}
    return {"1d_uint8": np.zeros(16, np.uint8), "n_by_15": np.zeros((2, 15), np.uint8),
            "n_by_17": np.zeros((2, 17), np.uint8), "uint32_n_by_4": np.zeros((2, 4), np.uint32),
            "int8_n_by_16": np.zeros((2, 16), np.int8), "3d": np.zeros((2, 16, 1), np.uint8), "list": [[0] * 16]}


@pytest.mark.parametrize("impl_name", BATCH_IMPLS)
def test_lookup_batch_rejects_wrong_dtype_or_shape(table, family, impl_name):
    for name, keys in bad_key_arrays(family).items():
        before = snapshot(table, family)
        with pytest.raises((TypeError, ValueError)):
            table.lookup_batch(0, keys, impl=impl_name)
        assert snapshot(table, family) == before, name


def test_lookup_batch_rejects_unknown_impl(table, family):
    assert_rejected(table, family, ValueError, table.lookup_batch, 0, keys_array(family, [1]), "avx9000")


def test_lookup_batch_of_zero_keys_returns_empty_uint32(table, family):
    for impl_name in BATCH_IMPLS:
        out = table.lookup_batch(0, keys_array(family, []), impl=impl_name)
        assert out.dtype == np.uint32 and out.shape == (0,)


def test_lookup_batch_never_misreads_non_contiguous_keys(table, family):
    """A strided view must be answered correctly or refused, never read as if it were dense."""
    ints = [int(ipaddress.ip_address(a)) for a in CASES[family]["probe"]]
    strided = keys_array(family, [a for a in ints for _ in (0, 1)])[::2]
    want = [table.lookup(0, a) for a in ints]
    for impl_name in BATCH_IMPLS:
        try:
            got = table.lookup_batch(0, strided, impl=impl_name)
        except (TypeError, ValueError):
            continue
        assert got.tolist() == want, impl_name


# ---------------------------------------------------------------- insert_batch / delete_batch
def batch(family, prefixes, nh0=1):
    nets = [ipaddress.ip_network(p) for p in prefixes]
    return (keys_array(family, [int(n.network_address) for n in nets]),
            np.array([n.prefixlen for n in nets], np.uint8),
            np.arange(nh0, nh0 + len(nets), dtype=np.uint32))


# The index of the bad entry appears nowhere else in these prefixes or next hops, so the message must name it.
GOOD_BATCH = {4: [f"172.{16 + i}.0.0/16" for i in range(20)], 6: [f"2001:db9:{i:x}::/48" for i in range(20)]}
BAD_INDEX = 13


@pytest.mark.parametrize("bad", ["host_bits_set", "prefix_length_too_long", "next_hop_is_no_route"])
def test_insert_batch_rejects_whole_batch_and_names_index_of_bad_entry(table, family, bad):
    addrs, lens, nhs = batch(family, GOOD_BATCH[family], nh0=1000)
    if bad == "host_bits_set":
        if family == 4:
            addrs[BAD_INDEX] |= 1
        else:
            addrs[BAD_INDEX, 15] |= 1
    elif bad == "prefix_length_too_long":
        lens[BAD_INDEX] = 33 if family == 4 else 129
    else:
        nhs[BAD_INDEX] = NO_ROUTE
    assert_rejected(table, family, ValueError, table.insert_batch, 0, addrs, lens, nhs,
                    match=rf"\b{BAD_INDEX}\b")
    for p in GOOD_BATCH[family]:
        assert table.get(0, p) is None


def test_insert_batch_rejects_arrays_of_different_lengths(table, family):
    addrs, lens, nhs = batch(family, GOOD_BATCH[family])
    assert_rejected(table, family, ValueError, table.insert_batch, 0, addrs, lens[:-1], nhs)
    assert_rejected(table, family, ValueError, table.insert_batch, 0, addrs, lens, nhs[:-1])
    assert_rejected(table, family, ValueError, table.insert_batch, 0, addrs[:-1], lens, nhs)
    assert_rejected(table, family, ValueError, table.delete_batch, 0, addrs[:-1], lens)


def test_insert_batch_rejects_addrs_of_wrong_dtype(table, family):
    addrs, lens, nhs = batch(family, GOOD_BATCH[family])
    for wrong in (addrs.astype(np.int64), addrs.astype(np.float64), addrs.view(np.int8 if family == 6 else np.int32)):
        assert_rejected(table, family, (TypeError, ValueError), table.insert_batch, 0, wrong, lens, nhs)
        assert_rejected(table, family, (TypeError, ValueError), table.delete_batch, 0, wrong, lens)


@pytest.mark.parametrize("which", ["lens", "nhs"])
def test_insert_batch_with_wider_int_dtype_is_refused_or_exact_never_wrapped(table, family, which):
    """lens/nhs given as int64 may be accepted, but a value that does not fit uint8/uint32 must be refused,
    never wrapped (2**32 + 5 silently becoming next hop 5)."""
    addrs, lens, nhs = batch(family, GOOD_BATCH[family])
    wide = {"lens": lens.astype(np.int64), "nhs": nhs.astype(np.int64)}
    wide[which][BAD_INDEX] += 256 if which == "lens" else 1 << 32
    assert_rejected(table, family, (TypeError, ValueError), table.insert_batch, 0,
                    addrs, wide["lens"], wide["nhs"])
    wide[which][BAD_INDEX] -= 256 if which == "lens" else 1 << 32
    try:
        table.insert_batch(0, addrs, wide["lens"], wide["nhs"])
    except (TypeError, ValueError):
        return
    for i, p in enumerate(GOOD_BATCH[family]):
        assert table.get(0, p) == int(nhs[i])


def test_delete_batch_rejects_whole_batch_with_host_bits_entry(table, family):
    present = CASES[family]["routes"][1:3]
    addrs, lens, _ = batch(family, present + GOOD_BATCH[family][:1])
    if family == 4:
        addrs[2] |= 1
    else:
        addrs[2, 15] |= 1
    assert_rejected(table, family, ValueError, table.delete_batch, CASES[family]["vrf"], addrs, lens)


def test_delete_of_absent_route_returns_false_and_keeps_generation(table, family):
    gen = table.generation
    absent = GOOD_BATCH[family][0]
    assert table.delete(0, absent) is False
    assert table.delete(12345, absent) is False                       # VRF never used
    addrs, lens, _ = batch(family, GOOD_BATCH[family])
    assert table.delete_batch(0, addrs, lens) == 0
    assert table.generation == gen


def test_replace_with_same_next_hop_keeps_generation(table, family):
    c = CASES[family]
    gen = table.generation
    assert table.insert(c["vrf"], c["routes"][1], 101) is False       # same nh as the fixture's
    assert table.generation == gen
    assert table.insert(c["vrf"], c["routes"][1], 102) is False
    assert table.generation > gen


# ---------------------------------------------------------------- memory exhaustion (C only)
def fail_each_allocation_until_success(table, family, call, limit=2000):
    """Run call with the k-th allocation failing for k = 0, 1, 2... until it succeeds; every failure must
    raise MemoryError and leave the table unchanged. Returns how many allocations the call needed."""
    import vrouter._ext as e

    for k in range(limit):
        before = snapshot(table, family)
        try:
            e.mem_fail_after(k)
            result = call()
        except MemoryError:
            e.mem_fail_after(-1)
            assert snapshot(table, family) == before, f"MemoryError at allocation {k} changed the table"
            continue
        finally:
            e.mem_fail_after(-1)
        return k, result
    pytest.fail(f"call still failing after {limit} allocations")


def test_insert_failing_at_every_allocation_leaves_table_unchanged(c_table, family):
    table = c_table
    deep = "10.200.100.0/31" if family == 4 else "2001:db8:1:2:3:4:5:0/127"
    k, result = fail_each_allocation_until_success(table, family, lambda: table.insert(9, deep, 77))
    assert k > 0, "a route in a new VRF should need at least one allocation"
    assert result is True and table.lookup(9, deep.split("/")[0]) == 77


def test_delete_failing_at_every_allocation_leaves_table_unchanged(c_table, family):
    table = c_table
    c = CASES[family]
    k, result = fail_each_allocation_until_success(table, family, lambda: table.delete(c["vrf"], c["routes"][2]))
    assert result is True and table.get(c["vrf"], c["routes"][2]) is None


def test_insert_batch_failing_at_every_allocation_leaves_table_unchanged(c_table, family):
    table = c_table
    prefixes = GOOD_BATCH[family] + (["10.1.2.0/24", "10.1.2.2/31", "0.0.0.0/0"] if family == 4 else
                                     ["2001:db8:1:2::/64", "2001:db8::1/128", "::/0"])
    addrs, lens, nhs = batch(family, prefixes, nh0=500)
    k, _ = fail_each_allocation_until_success(table, family,
                                              lambda: table.insert_batch(CASES[family]["vrf"], addrs, lens, nhs))
    assert k > 0, "an insert_batch into a fresh area should need at least one allocation"
    for i, p in enumerate(prefixes):
        assert table.get(CASES[family]["vrf"], p) == 500 + i


def test_delete_batch_failing_at_every_allocation_leaves_table_unchanged(c_table, family):
    table = c_table
    c = CASES[family]
    addrs, lens, _ = batch(family, c["routes"])
    k, n = fail_each_allocation_until_success(table, family, lambda: table.delete_batch(c["vrf"], addrs, lens))
    assert n == len(c["routes"]) and table.count(c["vrf"]) == 0

