"""Reference model of vrouter.nexthop.NhTable, written from the documented
rules (ext/nexthop.h and the facade's docstrings), not from the C code:
plain dicts for the state, references derived from the state on demand (the
C table counts them incrementally), headers packed with struct from the
current vif on every query (so a vif change shows up in its next hops).

Every operation returns its outcome: None when done, else (exception class
name, field) with the field the message must name (None: the message names
no field, e.g. an id out of range).
"""
import ipaddress
import struct

from vrouter.nexthop import LABEL_MAX, LABEL_MIN, NH_ECMP_MAX, VIF_MAX, VIF_MAX_PREFIXES, VNI_MAX

KINDS = ("virtual", "fabric", "host")
TYPES = ("discard", "receive", "interface", "tunnel", "ecmp", "vrf")
USES = {"discard": (), "receive": (), "vrf": ("vrf",), "ecmp": ("members",),
        "interface": ("vif", "dmac", "smac"),
        "tunnel": ("vif", "dmac", "smac", "encap", "src", "dst", "vni", "label", "inner_dmac", "ttl")}
DEFAULTS = {"vif": None, "dmac": None, "smac": None, "encap": "vxlan", "src": None, "dst": None,
            "vni": None, "label": None, "inner_dmac": None, "ttl": 0, "vrf": None, "members": None}
NOT_UNICAST = [ipaddress.ip_network(n) for n in
               ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/3", "::/128", "::1/128", "ff00::/8", "::ffff:0:0/96")]
PORTS = {"vxlan": 4789, "mplsoudp": 6635}
PAGE = 4096


class Refused(Exception):
    def __init__(self, cls, field=None):
        super().__init__(cls, field)
        self.outcome = (cls, field)


def check(ok, field, cls="ValueError"):
    if not ok:
        raise Refused(cls, field)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def in_range(v, lo, hi):
    return is_int(v) and lo <= v <= hi


def canon_mac(v, unicast=True):
    """Canonical 'aa:bb:..' or None when not an acceptable MAC."""
    try:
        b = bytes(int(p, 16) for p in v.replace("-", ":").split(":"))
    except (ValueError, AttributeError):
        return None
    if len(b) != 6 or b == bytes(6) or (unicast and b[0] & 1):
        return None
    return ":".join(f"{x:02x}" for x in b)


def unicast(v, version=None):
    try:
        a = ipaddress.ip_address(v)
    except ValueError:
        return None
    if (version and a.version != version) or any(a in n for n in NOT_UNICAST if n.version == a.version):
        return None
    return a


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def csum_words(b):
    return sum(struct.unpack(f">{len(b) // 2}H", b))


class NhModel:
    def __init__(self, capacity):
        self.capacity = capacity
        self.vifs, self.nhs, self.labels, self.vnis = {}, {}, {}, {}
        self.label_pages, self.vni_pages = set(), set()

    def run(self, op, *args, **kw):
        try:
            getattr(self, op)(*args, **kw)
        except Refused as r:
            return r.outcome
        return None

    # ------------------------------------------------------------ references (derived)

    def vif_refs(self, vid):
        return sum(1 for s in self.nhs.values() if s["type"] in ("interface", "tunnel") and s["vif"] == vid)

    def ecmp_refs(self, nid):
        return sum(1 for s in self.nhs.values() if s["type"] == "ecmp" for m in s["members"] if m == nid)

    def nh_refs(self, nid):
        return self.ecmp_refs(nid) + sum(1 for n in self.labels.values() if n == nid)

    # ------------------------------------------------------------ vifs

    def set_vif(self, id, *, kind="virtual", vrf=0, mac=None, mtu=1500, vlan=0, policy=False,
                admin_down=False, gw4=None, gw6=None, prefixes=()):
        check(in_range(id, 0, VIF_MAX - 1), None)
        check(kind in KINDS, "kind")
        check(in_range(vrf, 0, 65535), "vrf")
        check(in_range(mtu, 68, 65535), "mtu")
        check(in_range(vlan, 0, 4094), "vlan")
        m = canon_mac(mac or "")
        check(m, "mac")
        check(gw4 is None or unicast(gw4, 4), "gw4")
        check(gw6 is None or unicast(gw6, 6), "gw6")
        check(len(prefixes) <= VIF_MAX_PREFIXES, "prefixes")
        nets = []
        for p in prefixes:
            try:
                n = ipaddress.ip_network(p)   # strict: host bits set is an error
            except ValueError:
                raise Refused("ValueError", "prefixes") from None
            check(n.version == 4 or n.subnet_of(ipaddress.ip_network("::ffff:0:0/96")) is False, "prefixes")
            check(kind != "fabric" or n.prefixlen == n.max_prefixlen, "prefixes")
            nets.append(str(n))
        old = self.vifs.get(id)
        check(not old or old["kind"] == kind or not self.vif_refs(id), "kind", "InUseError")
        self.vifs[id] = {"id": id, "kind": kind, "vrf": vrf, "mac": m, "mtu": mtu, "vlan": vlan,
                         "policy": policy, "admin_down": admin_down,
                         "gw4": None if gw4 is None else str(ipaddress.ip_address(gw4)),
                         "gw6": None if gw6 is None else str(ipaddress.ip_address(gw6)),
                         "prefixes": nets}

    def del_vif(self, id):
        check(in_range(id, 0, VIF_MAX - 1), None)
        check(id in self.vifs, None, "KeyError")
        check(not self.vif_refs(id), None, "InUseError")
        del self.vifs[id]

    # ------------------------------------------------------------ next hops

    def set_nh(self, id, type, **kw):
        check(in_range(id, 0, self.capacity - 1), None)
        check(type in TYPES, "type")
        a = dict(DEFAULTS, **kw)
        for name in DEFAULTS:
            check(name in USES[type] or a[name] == DEFAULTS[name], name)
        spec = {"id": id, "type": type}
        if type in ("interface", "tunnel"):
            check(in_range(a["vif"], 0, VIF_MAX - 1), "vif")
            check(a["dmac"] is not None and canon_mac(a["dmac"], unicast=type == "tunnel"), "dmac")
            check(a["smac"] is None or canon_mac(a["smac"]), "smac")
            spec.update(vif=a["vif"], dmac=canon_mac(a["dmac"], False), smac=a["smac"] and canon_mac(a["smac"]))
        if type == "tunnel":
            check(a["encap"] in PORTS, "encap")
            src, dst = unicast(a["src"] or ""), unicast(a["dst"] or "")
            check(src, "src")
            check(dst and dst.version == src.version, "dst")
            spec.update(encap=a["encap"], src=str(src), dst=str(dst))
            if a["encap"] == "vxlan":
                check(a["label"] is None, "label")
                check(in_range(a["vni"], 0, VNI_MAX), "vni")
                check(a["inner_dmac"] is None or canon_mac(a["inner_dmac"]), "inner_dmac")
                spec.update(vni=a["vni"], inner_dmac=a["inner_dmac"] and canon_mac(a["inner_dmac"]))
            else:
                check(a["vni"] is None, "vni")
                check(in_range(a["label"], LABEL_MIN, LABEL_MAX), "label")
                check(a["inner_dmac"] is None, "inner_dmac")
                spec["label"] = a["label"]
            check(in_range(a["ttl"], 0, 255), "ttl")
            spec["ttl"] = a["ttl"]
        elif type == "ecmp":
            ms = a["members"]
            check(ms is not None and 1 <= len(ms) <= NH_ECMP_MAX, "members")
            check(all(m is None or in_range(m, 0, self.capacity - 1) for m in ms), "members")
            spec["members"] = list(ms)
        elif type == "vrf":
            check(in_range(a["vrf"], 0, 65535), "vrf")
            spec["vrf"] = a["vrf"]
        # What only the table's state can tell.
        if type in ("interface", "tunnel"):
            v = self.vifs.get(spec["vif"])
            check(v and (type == "interface" or v["kind"] == "fabric"), "vif")
        if type == "ecmp":
            for m in spec["members"]:
                check(m is None or (m != id and m in self.nhs and self.nhs[m]["type"] != "ecmp"), "members")
            old = self.nhs.get(id)
            check(not old or old["type"] == "ecmp" or not self.ecmp_refs(id), "type")
        self.nhs[id] = spec

    def del_nh(self, id):
        check(in_range(id, 0, self.capacity - 1), None)
        check(id in self.nhs, None, "KeyError")
        check(not self.nh_refs(id), None, "InUseError")
        del self.nhs[id]

    def nh(self, id):
        """What NhTable.nh() shows, rewrite included."""
        s = self.nhs.get(id)
        if s is None:
            return None
        out = dict(s)
        if s["type"] in ("interface", "tunnel"):
            v = self.vifs[s["vif"]]
            b = lambda m: bytes.fromhex(m.replace(":", ""))  # noqa: E731
            eth = b(s["dmac"]) + b(s["smac"] or v["mac"])
            if v["vlan"]:
                eth += struct.pack(">HH", 0x8100, v["vlan"])
            if s["type"] == "interface":
                out.update(hdr=eth + b"\0\0", l3_off=len(eth) + 2)
            else:
                out.update(self.tunnel_hdr(s, eth))
        if s["type"] == "ecmp":
            out["live"] = [i for i, m in enumerate(s["members"]) if m is not None]
        return out

    @staticmethod
    def tunnel_hdr(s, eth):
        src, dst = ipaddress.ip_address(s["src"]), ipaddress.ip_address(s["dst"])
        ttl = s["ttl"] or 64
        ip_base = udp_base = 0
        if src.version == 4:
            eth += b"\x08\x00"
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 0, 0, 0x4000, ttl, 17, 0, src.packed, dst.packed)
            ip_base = fold(csum_words(ip))
        else:
            eth += b"\x86\xdd"
            ip = struct.pack(">IHBB16s16s", 0x6 << 28, 0, 17, ttl, src.packed, dst.packed)
            udp_base = fold(csum_words(src.packed + dst.packed) + 17)
        udp = struct.pack(">HHHH", 0, PORTS[s["encap"]], 0, 0)
        if s["encap"] == "vxlan":
            tun = struct.pack(">B3xI", 0x08, s["vni"] << 8)
        else:
            tun = struct.pack(">I", s["label"] << 12 | 1 << 8 | ttl)
        return {"hdr": eth + ip + udp + tun, "l3_off": len(eth), "ip_csum_base": ip_base,
                "udp_csum_base": udp_base}

    # ------------------------------------------------------------ labels, VNIs

    def set_label(self, label, nh):
        check(in_range(label, LABEL_MIN, LABEL_MAX), None)
        check(in_range(nh, 0, self.capacity - 1) and nh in self.nhs, "nh")
        self.labels[label] = nh
        self.label_pages.add(label // PAGE)

    def del_label(self, label):
        check(in_range(label, LABEL_MIN, LABEL_MAX), None)
        check(self.labels.pop(label, None) is not None, None, "KeyError")

    def set_vni(self, vni, vrf):
        check(in_range(vni, 0, VNI_MAX), None)
        check(in_range(vrf, 0, 65535), "vrf")
        self.vnis[vni] = vrf
        self.vni_pages.add(vni // PAGE)

    def del_vni(self, vni):
        check(in_range(vni, 0, VNI_MAX), None)
        check(self.vnis.pop(vni, None) is not None, None, "KeyError")

    # ------------------------------------------------------------ whole state

    def dump(self):
        return {"vifs": {i: dict(self.vifs[i]) for i in sorted(self.vifs)},
                "nhs": {i: self.nh(i) for i in sorted(self.nhs)},
                "labels": dict(sorted(self.labels.items())), "vnis": dict(sorted(self.vnis.items())),
                "vif_refs": {i: n for i in sorted(self.vifs) if (n := self.vif_refs(i))},
                "nh_refs": {i: n for i in sorted(self.nhs) if (n := self.nh_refs(i))}}

    def memory(self, empty_table_bytes, sizes):
        """Bytes the C table should report, given an empty table's and the object sizes."""
        return (empty_table_bytes + len(self.vifs) * sizes["vif"] + len(self.nhs) * sizes["nh"]
                + (len(self.label_pages) + len(self.vni_pages)) * PAGE * 4)
