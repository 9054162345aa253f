"""Next-hop tables (ext/nexthop.c via vrouter.nexthop): validation naming the
field (facade and the C checks behind it), precomputed rewrites against
scapy, checksum bases, references and -EBUSY, vif updates rebuilding their
next hops, paged listing, label/VNI boundaries, all-or-nothing under memory
exhaustion, and a stateful comparison with tests/nh_ref.py."""
import re
import struct

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.vxlan import VXLAN

from control.fields import FieldError, FieldTypeError
from vrouter import _ext
from vrouter.nexthop import (LABEL_MAX, LABEL_MIN, NH_MAX_CAPACITY, NH_NONE, VIF_MAX, VNI_MAX,
                             InUseError, NhTable, TableError)

from nh_ref import NhModel, fold

FAB_MAC = "02:00:00:00:00:01"
VIRT_MAC = "02:00:00:00:01:00"
GW_MAC = "02:00:00:00:00:fe"      # the underlay router
POD_MAC = "52:54:00:00:00:02"
SIZES = _ext.nh_struct_sizes()
PAGE_BYTES = 4096 * 4


def outcome(fn, *a, **kw):
    """None, or (exception class name, the field its message names)."""
    try:
        fn(*a, **kw)
    except (ValueError, TypeError, KeyError, TableError) as e:
        m = re.match(r"(?:vif|nh|label|vni) \S+?(?: (\w+))?(?:\[\d+\])?:", str(e.args[0]) if e.args else str(e))
        # the shared field checkers' errors are ValueError / TypeError subclasses
        name = ("TypeError" if isinstance(e, FieldTypeError) else "ValueError" if isinstance(e, FieldError)
                else type(e).__name__)
        return name, m and m.group(1)
    return None


def table(cap=64, vlan=0, domain=None):
    """Fabric vif 1 (underlay addresses), virtual vif 2, host vif 3."""
    t = NhTable(cap, domain)
    t.set_vif(1, kind="fabric", mac=FAB_MAC, vlan=vlan, prefixes=["192.0.2.1/32", "2001:db8::1/128"])
    t.set_vif(2, kind="virtual", vrf=5, mac=VIRT_MAC, gw4="10.1.0.1", gw6="fe80::1",
              prefixes=["10.1.0.2/32", "2001:db8:5::/64"], policy=True)
    t.set_vif(3, kind="host", mac="02:00:00:00:00:03")
    return t


TUN4 = dict(vif=1, dmac=GW_MAC, src="192.0.2.1", dst="192.0.2.7", vni=5005)
TUN6 = dict(vif=1, dmac=GW_MAC, src="2001:db8::1", dst="2001:db8::7", encap="mplsoudp", label=100)


def full_state(t):
    return t.dump(), t.memory, [t.nh_refs(i) for i in range(t.capacity)], [t.vif_refs(i) for i in range(8)]


# ------------------------------------------------------------ validation (facade)

VIF_OK = dict(kind="virtual", mac=VIRT_MAC)


@pytest.mark.parametrize("kw,msg", [
    (dict(mtu=20), r"^vif 4 mtu: must be 68\.\.65535, got 20$"),
    (dict(mtu=65536), r"^vif 4 mtu"),
    (dict(kind="bogus"), r"^vif 4 kind: must be one of virtual, fabric, host"),
    (dict(vlan=4095), r"^vif 4 vlan: must be 0\.\.4094"),
    (dict(vrf=65536), r"^vif 4 vrf"),
    (dict(mac="01:00:5e:00:00:01"), r"^vif 4 mac: 01:00:5e:00:00:01 is a group"),
    (dict(mac="ff:ff:ff:ff:ff:ff"), r"^vif 4 mac: .* group"),
    (dict(mac="00:00:00:00:00:00"), r"^vif 4 mac: the all-zero MAC"),
    (dict(mac="02:00:00:00:01"), r"^vif 4 mac: must be a MAC like"),
    (dict(mac=b"\x02\x00"), r"^vif 4 mac: a MAC is 6 bytes"),
    (dict(gw4="224.0.0.1"), r"^vif 4 gw4: 224\.0\.0\.1 is a multicast"),
    (dict(gw4="0.0.0.0"), r"^vif 4 gw4"),
    (dict(gw4="255.255.255.255"), r"^vif 4 gw4"),
    (dict(gw4="2001:db8::1"), r"^vif 4 gw4: must be an IPv4 address"),
    (dict(gw6="ff02::1"), r"^vif 4 gw6: ff02::1 is a multicast"),
    (dict(gw6="::ffff:10.0.0.1"), r"^vif 4 gw6: .*IPv4-mapped"),
    (dict(gw6="::"), r"^vif 4 gw6"),
    (dict(prefixes=["10.1.0.1/24"]), r"^vif 4 prefixes\[0\]: invalid prefix .*host bits"),
    (dict(prefixes=["10.0.0.0/8", "2001:db8::/129"]), r"^vif 4 prefixes\[1\]: invalid prefix"),
    (dict(prefixes=["::ffff:10.0.0.0/104"]), r"^vif 4 prefixes\[0\]: .*IPv4-mapped"),
    (dict(prefixes=[f"10.0.{i}.0/24" for i in range(9)]), r"^vif 4 prefixes: at most 8, got 9"),
    (dict(kind="fabric", prefixes=["192.0.2.0/24"]), r"^vif 4 prefixes\[0\]: a fabric vif lists .*/32 or /128"),
])
def test_bad_vif_field_is_refused_naming_it(kw, msg):
    t = table()
    before = full_state(t)
    with pytest.raises(ValueError, match=msg):
        t.set_vif(4, **{**VIF_OK, **kw})
    assert full_state(t) == before


@pytest.mark.parametrize("call,exc,msg", [
    (lambda t: t.set_vif(4096, mac=VIRT_MAC), ValueError, r"^vif 4096: out of range 0\.\.4095"),
    (lambda t: t.set_vif("4", mac=VIRT_MAC), TypeError, r"^vif id: must be an integer"),
    (lambda t: t.set_vif(4, mac=VIRT_MAC, mtu="1500"), TypeError, r"^vif 4 mtu: must be an integer"),
    (lambda t: t.set_vif(4, mac=VIRT_MAC, policy=1), TypeError, r"^vif 4 policy: must be true or false"),
    (lambda t: t.set_vif(4, mac=1), TypeError, r"^vif 4 mac"),
    (lambda t: t.set_vif(4, mac=VIRT_MAC, prefixes="10.0.0.0/8"), TypeError, r"^vif 4 prefixes"),
    (lambda t: t.set_vif(4, "host"), ValueError, r"^vif 4 mac: required"),
    (lambda t: t.del_vif(9), KeyError, r"vif 9: not found"),
    (lambda t: t.del_vif(-1), ValueError, r"^vif -1: out of range"),
])
def test_vif_ids_and_types(call, exc, msg):
    t = table()
    with pytest.raises(exc, match=msg):
        call(t)


@pytest.mark.parametrize("args,kw,msg", [
    ((64, "discard"), {}, r"^nh 64: out of range 0\.\.63"),
    ((5, "bogus"), {}, r"^nh 5 type: must be one of discard, receive, interface, tunnel, ecmp, vrf"),
    ((5, "discard"), dict(vif=1), r"^nh 5 vif: not used by a discard next hop"),
    ((5, "vrf"), dict(vrf=1, ttl=3), r"^nh 5 ttl: not used by a vrf next hop"),
    ((5, "interface"), dict(vif=2, dmac=POD_MAC, encap="mplsoudp"), r"^nh 5 encap: not used"),
    ((5, "interface"), dict(dmac=POD_MAC), r"^nh 5 vif: required"),
    ((5, "interface"), dict(vif=4096, dmac=POD_MAC), r"^nh 5 vif: must be 0\.\.4095"),
    ((5, "interface"), dict(vif=7, dmac=POD_MAC), r"^nh 5 vif: vif 7 does not exist$"),
    ((5, "interface"), dict(vif=2), r"^nh 5 dmac: required"),
    ((5, "interface"), dict(vif=2, dmac="00:00:00:00:00:00"), r"^nh 5 dmac: the all-zero MAC"),
    ((5, "interface"), dict(vif=2, dmac=POD_MAC, smac="03:00:00:00:00:01"), r"^nh 5 smac: .* group"),
    ((5, "tunnel"), dict(TUN4, vif=2), r"^nh 5 vif: vif 2 is a virtual vif; a tunnel leaves through a fabric"),
    ((5, "tunnel"), dict(TUN4, vif=3), r"^nh 5 vif: vif 3 is a host vif"),
    ((5, "tunnel"), dict(TUN4, encap="gre"), r"^nh 5 encap: must be one of vxlan, mplsoudp"),
    ((5, "tunnel"), dict(TUN4, src=None), r"^nh 5 src: required"),
    ((5, "tunnel"), dict(TUN4, src="224.0.0.5"), r"^nh 5 src: 224\.0\.0\.5 is a multicast"),
    ((5, "tunnel"), dict(TUN4, src="0.0.0.0"), r"^nh 5 src"),
    ((5, "tunnel"), dict(TUN4, dst="127.0.0.1"), r"^nh 5 dst: 127\.0\.0\.1 is a loopback"),
    ((5, "tunnel"), dict(TUN4, dst="2001:db8::7"), r"^nh 5 dst: address family differs from src"),
    ((5, "tunnel"), dict(TUN6, dst="::ffff:192.0.2.7"), r"^nh 5 dst: .*IPv4-mapped"),
    ((5, "tunnel"), dict(TUN6, src="ff02::1"), r"^nh 5 src"),
    ((5, "tunnel"), dict(TUN4, vni=VNI_MAX + 1), r"^nh 5 vni: must be 0\.\.16777215"),
    ((5, "tunnel"), dict(TUN4, vni=None), r"^nh 5 vni: required"),
    ((5, "tunnel"), dict(TUN4, label=100), r"^nh 5 label: not used by vxlan"),
    ((5, "tunnel"), dict(TUN6, label=15), r"^nh 5 label: must be 16\.\.1048575"),
    ((5, "tunnel"), dict(TUN6, label=LABEL_MAX + 1), r"^nh 5 label"),
    ((5, "tunnel"), dict(TUN6, vni=5), r"^nh 5 vni: not used by mplsoudp"),
    ((5, "tunnel"), dict(TUN6, inner_dmac=POD_MAC), r"^nh 5 inner_dmac: not used by mplsoudp"),
    ((5, "tunnel"), dict(TUN4, inner_dmac="01:00:00:00:00:00"), r"^nh 5 inner_dmac"),
    ((5, "tunnel"), dict(TUN4, dmac="01:00:5e:00:00:01"), r"^nh 5 dmac: .* group"),
    ((5, "tunnel"), dict(TUN4, ttl=256), r"^nh 5 ttl: must be 0\.\.255"),
    ((5, "ecmp"), dict(members=[]), r"^nh 5 members: need 1\.\.64 slots, got 0"),
    ((5, "ecmp"), dict(members=[None] * 65), r"^nh 5 members: need 1\.\.64 slots, got 65"),
    ((5, "ecmp"), dict(members=[None, 64]), r"^nh 5 members\[1\]: must be 0\.\.63"),
    ((5, "ecmp"), dict(members=[10, 7]), r"^nh 5 members: slot 1: nh 7 does not exist"),
    ((5, "ecmp"), dict(members=[10, 5]), r"^nh 5 members: slot 1: an ECMP next hop cannot be its own"),
    ((10, "ecmp"), dict(members=[11, 10]), r"^nh 10 members: slot 1: an ECMP next hop cannot be its own"),
    ((5, "ecmp"), dict(members=[12]), r"^nh 5 members: slot 0: nh 12 is itself ECMP"),
    ((5, "ecmp"), dict(), r"^nh 5 members: required"),
    ((5, "vrf"), dict(), r"^nh 5 vrf: required"),
    ((5, "vrf"), dict(vrf=65536), r"^nh 5 vrf: must be 0\.\.65535"),
])
def test_bad_nh_field_is_refused_naming_it(args, kw, msg):
    t = table()
    t.set_nh(10, "interface", vif=2, dmac=POD_MAC)
    t.set_nh(11, "discard")
    t.set_nh(12, "ecmp", members=[10])
    before = full_state(t)
    with pytest.raises(ValueError, match=msg):
        t.set_nh(*args, **kw)
    assert full_state(t) == before


@pytest.mark.parametrize("call,exc,msg", [
    (lambda t: t.set_label(15, 0), ValueError, r"^label 15: out of range 16\.\.1048575 \(0\.\.15 are reserved\)"),
    (lambda t: t.set_label(LABEL_MAX + 1, 0), ValueError, r"^label 1048576: out of range"),
    (lambda t: t.set_label(16, 9), ValueError, r"^label 16 nh: next hop 9 does not exist"),
    (lambda t: t.set_label(16, 64), ValueError, r"^label 16 nh: must be 0\.\.63"),
    (lambda t: t.del_label(16), KeyError, r"label 16: not found"),
    (lambda t: t.set_vni(VNI_MAX + 1, 1), ValueError, r"^vni 16777216: out of range 0\.\.16777215"),
    (lambda t: t.set_vni(5, 65536), ValueError, r"^vni 5 vrf: must be 0\.\.65535"),
    (lambda t: t.del_vni(5), KeyError, r"vni 5: not found"),
    (lambda t: t.del_nh(5), KeyError, r"nh 5: not found"),
    (lambda t: NhTable(0), ValueError, r"^capacity: must be 1\.\.16777216"),
    (lambda t: NhTable(NH_MAX_CAPACITY + 1), ValueError, r"^capacity"),
    (lambda t: _ext.NhTableC(0), ValueError, r"^capacity: must be 1\.\."),
])
def test_label_vni_and_table_arguments(call, exc, msg):
    t = table()
    before = full_state(t)
    with pytest.raises(exc, match=msg):
        call(t)
    assert full_state(t) == before


# ------------------------------------------------------------ validation (the C checks, raw)

M4 = bytes(10) + b"\xff\xff"
MAC = bytes.fromhex("020000000001")


def raw_vif(**kw):
    a = dict(kind=1, flags=0, vrf=0, mtu=1500, vlan=0, mac=MAC)
    a.update(kw)
    return a


@pytest.mark.parametrize("kw,why", [
    (dict(kind=0), "kind"), (dict(kind=4), "kind"), (dict(flags=4), "flags"), (dict(flags=0x80), "flags"),
    (dict(mtu=67), "mtu"), (dict(mtu=0), "mtu"), (dict(vlan=4095), "vlan"), (dict(vlan=65535), "vlan"),
    (dict(mac=bytes.fromhex("010000000001")), "mac"), (dict(mac=bytes(6)), "mac"),
    (dict(gw4=bytes([224, 0, 0, 1])), "gw4"), (dict(gw4=bytes([127, 0, 0, 1])), "gw4"),
    (dict(gw4=bytes(4)), "gw4"), (dict(gw4=bytes([10, 0, 0, 1]), has_gw4=2), "gw4"),
    (dict(gw6=b"\xff\x02" + bytes(13) + b"\1"), "gw6"), (dict(gw6=bytes(15) + b"\1"), "gw6"),
    (dict(gw6=M4 + bytes([10, 0, 0, 1])), "gw6"), (dict(has_gw6=2), "gw6"),
    (dict(prefixes=[(M4 + bytes(4), 96, 4)] * 9), "prefixes"),
    (dict(prefixes=[(M4 + bytes([10, 0, 0, 0]), 104, 5)]), "prefixes"),
    (dict(prefixes=[(M4 + bytes([10, 0, 0, 0]), 95, 4)]), "prefixes"),
    (dict(prefixes=[(bytes([10, 0, 0, 0]), 104, 4)]), "prefixes"),         # not in mapped form
    (dict(prefixes=[(M4 + bytes([10, 0, 0, 1]), 120, 4)]), "prefixes"),    # host bits
    (dict(prefixes=[(b"\x20\x01\x0d\xb8\x40" + bytes(11), 33, 6)]), "prefixes"),
    (dict(prefixes=[(bytes(16), 129, 6)]), "prefixes"),
    (dict(kind=2, prefixes=[(M4 + bytes([192, 0, 2, 0]), 120, 4)]), "prefixes"),  # fabric: /32 only
])
def test_c_refuses_each_bad_vif_field(kw, why):
    t = table()
    before = full_state(t)
    with pytest.raises(ValueError, match=rf"^vif 4 {why}: "):
        t._t.vif_set(4, **raw_vif(**kw))
    assert full_state(t) == before


def test_c_accepts_the_edges_of_each_vif_field():
    t = table()
    t._t.vif_set(4, **raw_vif(kind=3, flags=3, mtu=68, vlan=4094, mac=bytes.fromhex("fefffffffffe"),
                              gw4=bytes([223, 255, 255, 254]), gw6=b"\xfe\x80" + bytes(13) + b"\1",
                              prefixes=[(M4 + bytes(4), 96, 4), (bytes(16), 0, 6),
                                        (M4 + bytes([10, 0, 0, 1]), 128, 4)] + [(bytes(16), 0, 6)] * 5))
    assert t.vif(4)["prefixes"][:3] == ["0.0.0.0/0", "::/0", "10.0.0.1/32"]
    # Unused fields are not published: a gateway without its flag, prefixes past n_prefixes.
    t._t.vif_set(5, **raw_vif(mtu=65535, gw4=bytes([224, 0, 0, 1]), has_gw4=0, gw6=b"\xff" * 16, has_gw6=0))
    v = t._t.vif_get(5)
    assert t.vif(5)["gw4"] is None and (v["gw4"], v["gw6"]) == (bytes(4), bytes(16))


NH_MAC = bytes.fromhex("0200000000fe")
S4, D4 = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 7])
S6, D6 = bytes.fromhex("20010db8" + "00" * 11 + "01"), bytes.fromhex("20010db8" + "00" * 11 + "07")
RAW_TUN = dict(encap=1, family=4, vif=1, dmac=NH_MAC, label=5, src=S4, dst=D4)


@pytest.mark.parametrize("ident,typ,kw,why", [
    (5, 0, {}, "type"), (5, 7, {}, "type"),
    (5, 3, dict(vif=9, dmac=NH_MAC), "vif"), (5, 3, dict(vif=5000, dmac=NH_MAC), "vif"),
    (5, 3, dict(vif=2), "dmac"), (5, 3, dict(vif=2, dmac=NH_MAC, smac=bytes.fromhex("010000000000")), "smac"),
    (5, 4, dict(RAW_TUN, vif=2), "vif"),
    (5, 4, dict(RAW_TUN, encap=0), "encap"), (5, 4, dict(RAW_TUN, encap=3), "encap"),
    (5, 4, dict(RAW_TUN, family=5), "family"), (5, 4, dict(RAW_TUN, family=0), "family"),
    (5, 4, dict(RAW_TUN, label=VNI_MAX + 1), "label"),
    (5, 4, dict(RAW_TUN, encap=2, label=15), "label"), (5, 4, dict(RAW_TUN, encap=2, label=LABEL_MAX + 1), "label"),
    (5, 4, dict(RAW_TUN, src=bytes(4)), "src"), (5, 4, dict(RAW_TUN, src=S4 + b"\1"), "src"),
    (5, 4, dict(RAW_TUN, src=bytes([239, 1, 1, 1])), "src"), (5, 4, dict(RAW_TUN, src=bytes([240, 0, 0, 1])), "src"),
    (5, 4, dict(RAW_TUN, dst=bytes([127, 0, 0, 1])), "dst"), (5, 4, dict(RAW_TUN, dst=D4 + bytes(11) + b"\1"), "dst"),
    (5, 4, dict(RAW_TUN, family=6, src=M4 + S4, dst=D6), "src"),
    (5, 4, dict(RAW_TUN, family=6, src=S6, dst=bytes(15) + b"\1"), "dst"),
    (5, 4, dict(RAW_TUN, family=6, src=S6, dst=b"\xff" + D6[1:]), "dst"),
    (5, 4, dict(RAW_TUN, dmac=bytes(6)), "dmac"), (5, 4, dict(RAW_TUN, dmac=b"\1" + NH_MAC[1:]), "dmac"),
    (5, 4, dict(RAW_TUN, smac=b"\3" + NH_MAC[1:]), "smac"),
    (5, 5, dict(members=[]), "n_members"), (5, 5, dict(members=[10], n_members=65), "n_members"),
    (5, 5, dict(members=[10, 7]), "members"), (5, 5, dict(members=[10, 64]), "members"),
    (5, 5, dict(members=[12]), "members"), (10, 5, dict(members=[11, 10]), "members"),
    (5, 5, dict(members=[NH_NONE, 0xfffffffe]), "members"),
    (10, 5, dict(members=[11]), "type"),       # 10 is a member of ECMP 12
])
def test_c_refuses_each_bad_nh_field(ident, typ, kw, why):
    t = table()
    t.set_nh(10, "interface", vif=2, dmac=POD_MAC)
    t.set_nh(11, "discard")
    t.set_nh(12, "ecmp", members=[10])
    before = full_state(t)
    with pytest.raises(ValueError, match=rf"^nh {ident} {why}: "):
        t._t.nh_set(ident, typ, **kw)
    assert full_state(t) == before


def test_c_range_errors():
    t = table(cap=8)
    with pytest.raises(ValueError, match=r"^nh 8: out of range 0\.\.7"):
        t._t.nh_set(8, 1)
    with pytest.raises(ValueError, match=r"^vif 4096: out of range"):
        t._t.vif_set(4096, **raw_vif())
    for call in (lambda: t._t.vif_del(4096), lambda: t._t.nh_del(8), lambda: t._t.label_del(15),
                 lambda: t._t.label_set(LABEL_MAX + 1, 0), lambda: t._t.vni_set(VNI_MAX + 1, 0),
                 lambda: t._t.vni_del(VNI_MAX + 1)):
        with pytest.raises(ValueError, match="out of range"):
            call()
    with pytest.raises(OverflowError):           # does not fit the C field: never truncated
        t._t.vif_set(4, **raw_vif(kind=257))


# ------------------------------------------------------------ rewrites

def eth_bytes(dmac, smac, vlan, payload_type):
    e = Ether(dst=dmac, src=smac)
    return e / Dot1Q(vlan=vlan, type=payload_type) if vlan else Ether(dst=dmac, src=smac, type=payload_type)


@pytest.mark.parametrize("vlan", [0, 100, 4094])
@pytest.mark.parametrize("smac", [None, "02:00:00:00:aa:bb"])
def test_interface_header(vlan, smac):
    t = table()
    t.set_vif(2, kind="virtual", mac=VIRT_MAC, vlan=vlan)
    t.set_nh(10, "interface", vif=2, dmac=POD_MAC, smac=smac)
    n = t.nh(10)
    want = bytes(eth_bytes(POD_MAC, smac or VIRT_MAC, vlan, 0))
    assert n["hdr"] == want and len(want) == (18 if vlan else 14)
    assert n["l3_off"] == len(want)
    assert n["smac"] == smac


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("encap", ["vxlan", "mplsoudp"])
@pytest.mark.parametrize("vlan", [0, 300])
@pytest.mark.parametrize("ttl", [0, 7])
def test_tunnel_header_matches_scapy(family, encap, vlan, ttl):
    t = table(vlan=vlan)
    src, dst = ("192.0.2.1", "198.51.100.9") if family == 4 else ("2001:db8::1", "2001:db8:9::9")
    key = {"vni": 0xABCDEF} if encap == "vxlan" else {"label": 0xABCDE}
    t.set_nh(20, "tunnel", vif=1, dmac=GW_MAC, src=src, dst=dst, encap=encap, ttl=ttl, **key,
             **({"inner_dmac": POD_MAC} if encap == "vxlan" else {}))
    n = t.nh(20)
    hop = ttl or 64
    if family == 4:
        ip = IP(src=src, dst=dst, flags="DF", ttl=hop, id=0, len=0, chksum=0, proto=17)
    else:
        ip = IPv6(src=src, dst=dst, hlim=hop, plen=0, nh=17)
    udp = UDP(sport=0, dport=4789 if encap == "vxlan" else 6635, len=0, chksum=0)
    tun = VXLAN(flags=0x08, vni=0xABCDEF) if encap == "vxlan" else MPLS(label=0xABCDE, cos=0, s=1, ttl=hop)
    want = bytes(eth_bytes(GW_MAC, FAB_MAC, vlan, 0x0800 if family == 4 else 0x86DD) / ip / udp / tun)
    assert n["hdr"] == want
    assert n["l3_off"] == (18 if vlan else 14)
    assert len(want) == n["l3_off"] + (20 if family == 4 else 40) + 8 + (8 if encap == "vxlan" else 4)
    assert n["ttl"] == ttl and n["src"] == src and n["dst"] == dst
    assert (n["ip_csum_base"] == 0) == (family == 6) and (n["udp_csum_base"] == 0) == (family == 4)


def test_longest_rewrite_fits():
    t = table(vlan=4094)
    t.set_nh(20, "tunnel", **TUN6, smac="02:00:00:00:00:99")
    t.set_nh(21, "tunnel", **dict(TUN6, encap="vxlan", label=None, vni=VNI_MAX))
    assert len(t.nh(21)["hdr"]) == 18 + 40 + 8 + 8 <= _ext.nh_constants()["NH_HDR_MAX"]
    assert t.nh(20)["hdr"][6:12] == bytes.fromhex("020000000099")


@pytest.mark.parametrize("total", [36, 50, 576, 1500, 9000, 65535])
@pytest.mark.parametrize("dst", ["192.0.2.7", "203.0.113.255", "10.255.255.254"])
def test_ip_csum_base_gives_the_ipv4_header_checksum(total, dst):
    t = table()
    t.set_nh(20, "tunnel", **dict(TUN4, dst=dst, ttl=200))
    n = t.nh(20)
    ip = bytearray(n["hdr"][n["l3_off"]:n["l3_off"] + 20])
    csum = ~fold(n["ip_csum_base"] + total) & 0xFFFF        # what the pipeline does
    struct.pack_into(">H", ip, 2, total)
    p = IP(bytes(ip))
    del p.chksum
    assert IP(bytes(p)).chksum == csum                       # scapy computes it from scratch
    struct.pack_into(">H", ip, 10, csum)
    assert fold(sum(struct.unpack(">10H", ip))) == 0xFFFF    # and the header verifies


@pytest.mark.parametrize("payload", [b"", b"x", b"hello vxlan", bytes(range(256)) * 5])
@pytest.mark.parametrize("sport", [0, 1, 49152, 65535])
def test_udp_csum_base_gives_the_ipv6_udp_checksum(payload, sport):
    t = table()
    t.set_nh(20, "tunnel", **TUN6)
    n = t.nh(20)
    ulen = 8 + len(payload)
    udp = bytearray(n["hdr"][n["l3_off"] + 40:n["l3_off"] + 48])
    struct.pack_into(">H", udp, 0, sport)
    struct.pack_into(">H", udp, 4, ulen)
    body = bytes(udp) + payload + (b"\0" if len(payload) % 2 else b"")
    s = n["udp_csum_base"] + ulen + sum(struct.unpack(f">{len(body) // 2}H", body))
    csum = ~fold(s) & 0xFFFF or 0xFFFF
    p = IPv6(src="2001:db8::1", dst="2001:db8::7", nh=17) / UDP(sport=sport, dport=6635) / payload
    assert IPv6(bytes(p))[UDP].chksum == csum


# ------------------------------------------------------------ references

def test_references_and_in_use_errors():
    t = table()
    t.set_nh(10, "interface", vif=2, dmac=POD_MAC)
    t.set_nh(11, "tunnel", **TUN4)
    t.set_nh(13, "tunnel", **TUN6)
    assert (t.vif_refs(1), t.vif_refs(2), t.vif_refs(3)) == (2, 1, 0)
    with pytest.raises(InUseError, match=r"^vif 1: in use by nh 11, nh 13$"):
        t.del_vif(1)
    with pytest.raises(InUseError, match=r"^vif 2 kind: cannot change from virtual to host while next hops "
                                         r"use it \(nh 10\)"):
        t.set_vif(2, kind="host", mac=VIRT_MAC)
    assert isinstance(InUseError("x"), TableError)
    t.set_vif(3, kind="virtual", mac="02:00:00:00:00:03")    # unused: its kind may change
    t.set_nh(10, "interface", vif=3, dmac=POD_MAC)           # moves the reference
    assert (t.vif_refs(2), t.vif_refs(3)) == (0, 1)
    t.del_vif(2)
    # ECMP: one reference per live slot, duplicates count twice.
    t.set_nh(12, "ecmp", members=[11, None, 13, 11])
    assert (t.nh_refs(11), t.nh_refs(13), t.nh(12)["live"]) == (2, 1, [0, 2, 3])
    t.set_label(100, 11)
    t.set_label(LABEL_MAX, 11)
    assert t.nh_refs(11) == 4
    with pytest.raises(InUseError, match=r"^nh 11: in use by ecmp nh 12, label 100, label 1048575$"):
        t.del_nh(11)
    with pytest.raises(KeyError):
        t.del_nh(14)
    # An ECMP member cannot become ECMP; a label target can.
    with pytest.raises(ValueError, match=r"^nh 11 type: it is a member of ecmp nh 12, label 100"):
        t.set_nh(11, "ecmp", members=[10])
    t.set_nh(12, "ecmp", members=[13])                        # replace: refs moved atomically
    assert (t.nh_refs(11), t.nh_refs(13)) == (2, 1)
    t.set_nh(11, "ecmp", members=[10, 13])                    # only labels refer to 11 now
    assert (t.nh_refs(10), t.nh_refs(13), t.nh_refs(11)) == (1, 2, 2)
    t.set_label(100, 13)                                      # replace moves the label's ref
    assert (t.nh_refs(11), t.nh_refs(13)) == (1, 3)
    t.del_label(LABEL_MAX)
    t.del_nh(11)                                              # releases its member refs
    assert (t.nh_refs(10), t.nh_refs(13)) == (0, 2)
    t.set_nh(12, "discard")                                   # was ECMP: refs released
    assert t.nh_refs(13) == 1
    t.del_label(100)
    t.del_nh(13)
    assert (t.vif_refs(1), t.vif_refs(3)) == (0, 1) and t.dump()["nh_refs"] == {}
    t.del_vif(1)


def test_set_vif_and_nh_round_trip_through_their_dicts():
    t = table()
    t.set_nh(10, "interface", vif=2, dmac=POD_MAC, smac="02:00:00:00:00:aa")
    t.set_nh(11, "tunnel", **dict(TUN4, inner_dmac=POD_MAC, ttl=9))
    t.set_nh(12, "tunnel", **TUN6)
    t.set_nh(13, "ecmp", members=[None, 10, 11])
    t.set_nh(14, "vrf", vrf=65535)
    t.set_nh(15, "receive")
    before = t.dump()
    extra = ("hdr", "l3_off", "ip_csum_base", "udp_csum_base", "live")
    for i in t.vifs():
        t.set_vif(**t.vif(i))
    for i in t.nhs():
        d = {k: v for k, v in t.nh(i).items() if k not in extra}
        t.set_nh(d.pop("id"), d.pop("type"), **d)
    assert t.dump() == before
    assert t.vif(2) == {"id": 2, "kind": "virtual", "vrf": 5, "mac": VIRT_MAC, "mtu": 1500, "vlan": 0,
                        "policy": True, "admin_down": False, "gw4": "10.1.0.1", "gw6": "fe80::1",
                        "prefixes": ["10.1.0.2/32", "2001:db8:5::/64"]}
    assert t.nh(13) == {"id": 13, "type": "ecmp", "members": [None, 10, 11], "live": [1, 2]}
    assert t.nh(14) == {"id": 14, "type": "vrf", "vrf": 65535}
    assert t.vif(99) is None and t.nh(63) is None


# ------------------------------------------------------------ vif updates

def test_vif_update_rebuilds_dependent_headers_and_defers_the_old_objects():
    dom = _ext.RcuDomain()
    t = table(domain=dom)
    t.set_nh(10, "interface", vif=1, dmac=POD_MAC)
    t.set_nh(11, "tunnel", **TUN4)
    t.set_nh(12, "tunnel", **dict(TUN6, smac="02:00:00:00:00:77"))
    t.set_nh(13, "interface", vif=2, dmac=POD_MAC)
    m = NhModel(64)
    for i in (1, 2, 3):
        m.set_vif(**t.vif(i))
    for i in (10, 11, 12, 13):
        d = {k: v for k, v in t.nh(i).items() if k not in ("hdr", "l3_off", "ip_csum_base", "udp_csum_base")}
        m.set_nh(d.pop("id"), d.pop("type"), **d)
    old13 = t.nh(13)
    slot = dom.register()
    dom.online(slot)
    try:
        t.set_vif(1, kind="fabric", mac="02:00:00:00:99:99", vlan=42, prefixes=["192.0.2.1/32"])
        m.set_vif(1, kind="fabric", mac="02:00:00:00:99:99", vlan=42, prefixes=["192.0.2.1/32"])
        assert dom.pending == 4                # the old vif and its three next hops, kept for the reader
    finally:
        dom.offline(slot)
        dom.unregister(slot)
    dom.reclaim()
    assert dom.pending == 0
    for i in (10, 11, 12):
        got, want = t.nh(i), m.nh(i)
        assert got["hdr"] == want["hdr"] and got["l3_off"] == want["l3_off"]
        assert got["hdr"][12:16] == bytes.fromhex("8100002a")
    assert t.nh(10)["hdr"][6:12] == t.nh(11)["hdr"][6:12] == bytes.fromhex("020000009999")
    assert t.nh(12)["hdr"][6:12] == bytes.fromhex("020000000077")   # explicit smac kept
    assert t.nh(13) == old13
    # Same MAC and VLAN: nothing to rebuild, only the vif is replaced.
    pend = dom.pending
    t.set_vif(1, kind="fabric", mac="02:00:00:00:99:99", vlan=42, mtu=9000, prefixes=[])
    assert t.nh(11)["hdr"] == m.nh(11)["hdr"] and dom.pending == pend


# ------------------------------------------------------------ listing, boundaries, memory

def test_paged_listing_returns_every_id_once_in_order():
    t = NhTable(100)
    vifs = [0, 1, 7, 4094, 4095]
    for v in vifs:
        t.set_vif(v, mac=VIRT_MAC)
    nhs = [0, 3, 50, 98, 99]
    for n in nhs:
        t.set_nh(n, "discard")
    labels = {16: 0, 4095: 3, 4096: 50, 8191: 98, 500000: 99, LABEL_MAX: 0}
    for k, v in labels.items():
        t.set_label(k, v)
    vnis = {0: 1, 4095: 2, 4096: 3, VNI_MAX: 65535}
    for k, v in vnis.items():
        t.set_vni(k, v)
    for cap in (1, 2, 3, 1000):
        got, cur, n = [], 0, 0
        while True:
            ids, cur = t._t.vif_list(cur, cap)
            if not ids:
                break
            assert len(ids) <= cap and (not got or ids[0] > got[-1])
            got += ids
            n += 1
        assert got == vifs and cur == VIF_MAX and n == -(-len(vifs) // cap)
        got, cur = [], 0
        while (page := t._t.nh_list(cur, cap))[0]:
            got += page[0]
            cur = page[1]
        assert got == nhs
        got, cur = {}, 0
        while (page := t._t.label_list(cur, cap))[0]:
            assert len(page[0]) <= cap
            got.update(zip(page[0], page[1]))
            cur = page[2]
        assert got == labels and cur == LABEL_MAX + 1
        got, cur = {}, 0
        while (page := t._t.vni_list(cur, cap))[0]:
            got.update(zip(page[0], page[1]))
            cur = page[2]
        assert got == vnis and cur == VNI_MAX + 1
    assert t._t.vif_list(5, 0) == ([], 5)                       # cap 0: nothing, cursor kept
    assert t._t.vif_list(2, 2) == ([7, 4094], 4095)             # cursor: past the last one returned
    assert t._t.label_list(4096, 1) == ([4096], [50], 4097)
    assert t._t.nh_list(100, 5) == ([], 100) and t._t.vni_list(VNI_MAX + 1, 5) == ([], [], VNI_MAX + 1)
    assert t.labels() == labels and t.vnis() == vnis and t.vifs() == vifs and t.nhs() == nhs


def test_label_and_vni_boundaries():
    t = table(cap=4)
    t.set_nh(0, "discard")
    for bad in (0, 15, LABEL_MAX + 1):
        assert outcome(t.set_label, bad, 0) == ("ValueError", None)
        with pytest.raises(ValueError, match="out of range"):
            t._t.label_set(bad, 0)                              # the C check, below the facade
    for good in (LABEL_MIN, LABEL_MAX):
        t.set_label(good, 0)
        assert t.label(good) == 0
    assert t.label(15) is None and t.label(LABEL_MAX + 1) is None and t.label(2 ** 32 - 1) is None
    assert t._t.label_lookup(0) == NH_NONE
    with pytest.raises(ValueError, match="out of range"):
        t._t.vni_set(VNI_MAX + 1, 0)
    t.set_vni(0, 0)
    t.set_vni(VNI_MAX, 65535)
    assert (t.vni(0), t.vni(VNI_MAX), t.vni(VNI_MAX + 1), t.vni(1)) == (0, 65535, None, None)
    assert t._t.vni_lookup(2 ** 32 - 1) == -1
    t.del_vni(0)
    assert t.vni(0) is None and outcome(t.del_vni, 0) == ("KeyError", None)
    assert t.labels() == {16: 0, LABEL_MAX: 0} and t.nh_refs(0) == 2


def test_memory_counts_arrays_pages_and_objects():
    t = NhTable(1000)
    base = t.memory
    # arrays: vifs + vif refs, nhs + nh refs; the label and VNI directories
    assert base >= 4096 * 12 + 1000 * 12 + (256 + 4096) * 8
    t.set_vif(1, mac=VIRT_MAC)
    t.set_nh(0, "discard")
    assert t.memory == base + SIZES["vif"] + SIZES["nh"]
    t.set_label(16, 0)
    t.set_label(17, 0)                                  # same page
    t.set_vni(VNI_MAX, 1)
    assert t.memory == base + SIZES["vif"] + SIZES["nh"] + 2 * PAGE_BYTES
    t.del_label(16)
    t.del_label(17)
    t.del_nh(0)
    t.del_vif(1)
    assert t.memory == base + 2 * PAGE_BYTES            # pages stay until the table goes
    big = NhTable(NH_MAX_CAPACITY)
    big.set_nh(NH_MAX_CAPACITY - 1, "receive")
    assert big.nhs() == [NH_MAX_CAPACITY - 1] and big.memory > NH_MAX_CAPACITY * 12


def _exhaust(op, t, max_k=40):
    """Run op with the k-th allocation failing, k = 0, 1, ...: every failure
    must leave the table exactly as it was; returns how many failed."""
    for k in range(max_k):
        before = full_state(t)
        _ext.mem_fail_after(k)
        try:
            op()
        except MemoryError:
            _ext.mem_fail_after(-1)
            assert full_state(t) == before, f"allocation {k}"
            continue
        finally:
            _ext.mem_fail_after(-1)
        return k
    pytest.fail("the operation never succeeded")


def test_memory_exhaustion_leaves_every_table_as_it_was():
    dom = _ext.RcuDomain()
    t = table(domain=dom)
    t.set_nh(10, "interface", vif=1, dmac=POD_MAC)
    t.set_nh(11, "tunnel", **TUN4)
    t.set_nh(12, "tunnel", **TUN6)
    t.set_nh(13, "ecmp", members=[10, 11])
    # new vif; replaced vif rebuilding three next hops; new / replaced next hops;
    # labels and VNIs on new pages
    assert _exhaust(lambda: t.set_vif(5, mac=VIRT_MAC), t) >= 1
    assert _exhaust(lambda: t.set_vif(1, kind="fabric", mac="02:00:00:00:00:55", vlan=7), t) >= 4
    assert [t.nh(i)["hdr"][6:12] for i in (10, 11, 12)] == [bytes.fromhex("020000000055")] * 3
    assert _exhaust(lambda: t.set_nh(20, "tunnel", **TUN4), t) >= 1
    assert _exhaust(lambda: t.set_nh(13, "ecmp", members=[12, None, 20]), t) >= 1
    assert (t.nh_refs(10), t.nh_refs(12), t.nh_refs(20)) == (0, 1, 1)
    assert _exhaust(lambda: t.set_label(70000, 20), t) >= 1
    assert _exhaust(lambda: t.set_vni(9_000_000, 3), t) >= 1
    # Deletes allocate only when the RCU deferral list must grow: keep a reader
    # online so deferrals pile up, and repeat until a delete has to grow it.
    slot = dom.register()
    dom.online(slot)
    try:
        for add, delete in ((lambda: t.set_nh(21, "discard"), lambda: t.del_nh(21)),
                            (lambda: t.set_vif(6, mac=VIRT_MAC), lambda: t.del_vif(6))):
            for _ in range(300):
                add()
                before = full_state(t)
                _ext.mem_fail_after(0)
                try:
                    delete()
                except MemoryError:
                    _ext.mem_fail_after(-1)
                    assert full_state(t) == before
                    delete()
                    break
                finally:
                    _ext.mem_fail_after(-1)
            else:
                pytest.fail("no delete had to grow the deferral list")
    finally:
        dom.offline(slot)
        dom.unregister(slot)
    dom.reclaim()


def test_table_creation_under_memory_exhaustion():
    fails = 0
    for k in range(20):
        _ext.mem_fail_after(k)
        try:
            t = NhTable(16)
        except MemoryError:
            fails += 1
            continue
        finally:
            _ext.mem_fail_after(-1)
        break
    assert fails == 7 and t.memory > 0 and t.nhs() == []   # the table, 4 arrays, 2 directories


# ------------------------------------------------------------ stateful comparison with the model
#
# Each operation is drawn valid, then with probability 1/10 one field is
# swapped for a value from that field's bad pool: most operations succeed and
# build up state, and every kind of refusal still comes up.

CAP = 6
VIF_IDS = [0, 1, 2, 3]
LABELS = [15, 16, 17, 4096, LABEL_MAX, LABEL_MAX + 1]
VNIS = [0, 5, 4096, VNI_MAX, VNI_MAX + 1]
MACS = ["02:00:00:00:00:01", "02:00:00:00:00:02", "0a:bc:00:00:00:03"]
BAD = {
    "id": [VIF_MAX, -1], "nid": [CAP, -1], "kind": ["bogus"], "mac": ["01:00:5e:00:00:01", "00:00:00:00:00:00"],
    "mtu": [67, 0, 65536], "vlan": [4095], "gw4": ["224.0.0.1", "127.0.0.1"], "gw6": ["ff02::1", "::"],
    "prefixes": [["10.1.0.1/24"], ["::ffff:10.0.0.0/104"], ["10.0.0.0/8"] * 9], "vif": [VIF_MAX, 3],
    "dmac": ["01:00:5e:00:00:01", "00:00:00:00:00:00"], "smac": ["ff:ff:ff:ff:ff:ff"],
    "ends": [("192.0.2.1", "2001:db8::2"), ("0.0.0.0", "192.0.2.2"), ("2001:db8::1", "ff02::1")],
    "key": [15, LABEL_MAX + 1, VNI_MAX + 1], "ttl": [256], "inner": ["01:00:00:00:00:00"],
    "members": [[], [None] * 65, [CAP]], "type": ["bogus"], "vrf": [65536], "encap": ["gre"],
}
FIELD = st.sampled_from([None] * 9 + ["any"])


def spoil(data, kw, fields):
    """With probability 1/10, replace one of `fields` by a bad value."""
    if data.draw(FIELD) is None:
        return kw
    f = data.draw(st.sampled_from(fields))
    return dict(kw, **{f: data.draw(st.sampled_from(BAD[f]))})


def _normalise(dump):
    """Checksum bases compare as one's-complement values (mod 0xffff)."""
    for n in dump["nhs"].values():
        for k in ("ip_csum_base", "udp_csum_base"):
            if k in n:
                n[k] %= 0xFFFF
    return dump


class NhMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.t = NhTable(CAP)
        self.m = NhModel(CAP)
        self.empty = self.t.memory
        for target in (self.t, self.m):          # a fabric and a virtual vif to start with
            target.set_vif(0, kind="fabric", mac=MACS[0], prefixes=["192.0.2.1/32"])
            target.set_vif(1, kind="virtual", mac=MACS[1], vlan=7)

    def apply(self, op, *a, **kw):
        got = outcome(getattr(self.t, op), *a, **kw)
        want = self.m.run(op, *a, **kw)
        assert got == want, (op, a, kw)
        return got

    def some_nh(self, data, ecmp_ok=True, exclude=None):
        """Mostly an existing next hop (not ECMP unless ecmp_ok), sometimes any id."""
        ids = [i for i, s in self.m.nhs.items() if (ecmp_ok or s["type"] != "ecmp") and i != exclude]
        return data.draw(st.sampled_from(ids) if ids and data.draw(st.integers(0, 3)) else st.integers(0, CAP - 1))

    def some_vif(self, data, fabric=False):
        """Mostly an existing vif (a fabric one if asked), sometimes any id."""
        ids = [i for i, v in self.m.vifs.items() if not fabric or v["kind"] == "fabric"]
        return data.draw(st.sampled_from(ids) if ids and data.draw(st.integers(0, 3)) else st.sampled_from(VIF_IDS))

    @rule(data=st.data(), id=st.sampled_from(VIF_IDS), kind=st.sampled_from(["virtual", "fabric", "fabric", "host"]),
          mac=st.sampled_from(MACS), mtu=st.sampled_from([1500, 9000, 68, 65535]), vlan=st.sampled_from([0, 7, 4094]),
          policy=st.booleans(), gw4=st.sampled_from([None, "10.1.0.1"]), gw6=st.sampled_from([None, "fe80::1"]),
          prefixes=st.lists(st.sampled_from(["10.1.0.2/32", "2001:db8::2/128", "192.0.2.9/32"]), max_size=3))
    def set_vif(self, data, **kw):
        kw = spoil(data, kw, ["id", "kind", "mac", "mtu", "vlan", "gw4", "gw6", "prefixes"])
        if kw["kind"] != "fabric" and data.draw(st.booleans()):
            kw["prefixes"] = kw["prefixes"] + ["10.1.0.0/24"]     # fine for a non-fabric vif
        self.apply("set_vif", kw.pop("id"), **kw)

    @rule(vid=st.sampled_from(VIF_IDS + [VIF_MAX]))
    def del_vif(self, vid):
        self.apply("del_vif", vid)

    @rule(data=st.data(), nid=st.integers(0, CAP - 1), dmac=st.sampled_from(MACS),
          smac=st.sampled_from([None, None, MACS[2]]))
    def set_interface(self, data, nid, **kw):
        kw = spoil(data, dict(kw, nid=nid, vif=self.some_vif(data)), ["nid", "vif", "dmac", "smac"])
        self.apply("set_nh", kw.pop("nid"), "interface", **kw)

    @rule(data=st.data(), nid=st.integers(0, CAP - 1), dmac=st.sampled_from(MACS),
          smac=st.sampled_from([None, MACS[2]]),
          ends=st.sampled_from([("192.0.2.1", "192.0.2.2"), ("192.0.2.1", "198.51.100.3"),
                                ("2001:db8::1", "2001:db8::2")]),
          encap=st.sampled_from(["vxlan", "mplsoudp"]), key=st.sampled_from([16, 100, LABEL_MAX]),
          ttl=st.sampled_from([0, 1, 255]), inner=st.sampled_from([None, MACS[1]]))
    def set_tunnel(self, data, nid, **kw):
        kw = spoil(data, dict(kw, nid=nid, vif=self.some_vif(data, fabric=True)),
                   ["nid", "vif", "dmac", "smac", "ends", "key", "ttl", "inner", "encap"])
        key, inner, ends = kw.pop("key"), kw.pop("inner"), kw.pop("ends")
        kw.update({"vni": key, "inner_dmac": inner} if kw["encap"] == "vxlan" else {"label": key})
        self.apply("set_nh", kw.pop("nid"), "tunnel", src=ends[0], dst=ends[1], **kw)

    @rule(data=st.data(), n=st.integers(1, 4))
    def set_ecmp(self, data, n):
        in_ecmp = sorted({m for x in self.m.nhs.values() if x["type"] == "ecmp" for m in x["members"]} - {None})
        if in_ecmp and data.draw(st.integers(0, 2)) == 0:
            nid = data.draw(st.sampled_from(in_ecmp))          # a member: cannot become ECMP
        else:
            nid = self.some_nh(data)
        members = [None if data.draw(st.integers(0, 4)) == 0 else self.some_nh(data, False, nid) for _ in range(n)]
        kw = spoil(data, {"nid": nid, "members": members}, ["nid", "members"])
        self.apply("set_nh", kw.pop("nid"), "ecmp", **kw)

    @rule(data=st.data(), nid=st.integers(0, CAP - 1), type=st.sampled_from(["discard", "receive", "vrf"]),
          vrf=st.integers(0, 65535))
    def set_simple(self, data, nid, type, vrf):
        kw = spoil(data, {"nid": nid, "type": type, "vrf": vrf}, ["nid", "type", "vrf"])
        extra = {"vrf": kw["vrf"]} if kw["type"] == "vrf" else {}
        self.apply("set_nh", kw["nid"], kw["type"], **extra)

    @rule(data=st.data())
    def del_nh(self, data):
        self.apply("del_nh", self.some_nh(data) if data.draw(st.integers(0, 9)) else CAP)

    @rule(data=st.data(), label=st.sampled_from(LABELS))
    def set_label(self, data, label):
        self.apply("set_label", label, self.some_nh(data))

    @rule(data=st.data())
    def del_label(self, data):
        used = sorted(self.m.labels)
        self.apply("del_label", data.draw(st.sampled_from(used) if used and data.draw(st.booleans())
                                          else st.sampled_from(LABELS)))

    @rule(vni=st.sampled_from(VNIS), vrf=st.sampled_from([0, 1, 65535]))
    def set_vni(self, vni, vrf):
        self.apply("set_vni", vni, vrf)

    @rule(data=st.data())
    def del_vni(self, data):
        used = sorted(self.m.vnis)
        self.apply("del_vni", data.draw(st.sampled_from(used) if used and data.draw(st.booleans())
                                        else st.sampled_from(VNIS)))

    @invariant()
    def same_state(self):
        if not hasattr(self, "t"):
            return
        assert _normalise(self.t.dump()) == _normalise(self.m.dump())
        assert [self.t.nh_refs(i) for i in range(CAP)] == [self.m.nh_refs(i) for i in range(CAP)]
        assert [self.t.vif_refs(i) for i in VIF_IDS] == [self.m.vif_refs(i) for i in VIF_IDS]
        assert [self.t.label(x) for x in LABELS] == [self.m.labels.get(x) for x in LABELS]
        assert [self.t.vni(x) for x in VNIS] == [self.m.vnis.get(x) for x in VNIS]
        assert self.t.memory == self.m.memory(self.empty, SIZES)


TestNhTableMatchesModel = NhMachine.TestCase
