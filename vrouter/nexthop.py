"""Next-hop facade: interfaces (vifs), next hops, MPLS labels and VNIs from
plain Python values, validated field by field, kept in the C tables of
ext/nexthop.{h,c} that the pipeline reads.

    t = NhTable()
    t.set_vif(1, kind="fabric", mac="02:00:00:00:00:01", prefixes=["192.0.2.1/32"])
    t.set_vif(2, kind="virtual", vrf=5, mac="02:00:00:00:01:00", gw4="10.1.0.1",
              prefixes=["10.1.0.2/32"])
    t.set_nh(10, "interface", vif=2, dmac="52:54:00:00:00:02")
    t.set_nh(11, "tunnel", vif=1, dmac="02:00:00:00:00:fe", src="192.0.2.1",
             dst="192.0.2.7", encap="vxlan", vni=5005, inner_dmac="02:00:00:00:07:00")
    t.set_nh(12, "ecmp", members=[11, None, 10])
    t.set_label(100, 10); t.set_vni(5005, 5)

Errors: ValueError / TypeError whose message starts with the object and the
field ("vif 3 mtu: must be 68..65535, got 20"); KeyError when deleting what
is absent; InUseError (a TableError) when something still refers to the
object (labels and ECMP next hops to a next hop, next hops to a vif); a
refused call leaves the table unchanged, MemoryError included.
"""
from __future__ import annotations

import ipaddress

import numpy as np

from control import fields as F
from vrouter import _ext

_C = _ext.nh_constants()
VIF_MAX = _C["VIF_MAX"]
VIF_MAX_PREFIXES = _C["VIF_MAX_PREFIXES"]
NH_NONE = _C["NH_NONE"]
NH_DEFAULT_CAPACITY = _C["NH_DEFAULT_CAPACITY"]
NH_MAX_CAPACITY = _C["NH_MAX_CAPACITY"]
NH_ECMP_MAX = _C["NH_ECMP_MAX"]
LABEL_MIN = _C["LABEL_MIN"]
LABEL_MAX = _C["LABEL_MAX"]
VNI_MAX = _C["VNI_MAX"]
KINDS = _C["kinds"]
TYPES = _C["types"]
ENCAPS = _C["encaps"]
KIND_NAMES = {v: k for k, v in KINDS.items()}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
ENCAP_NAMES = {v: k for k, v in ENCAPS.items()}
F_POLICY = _C["flags"]["policy"]
F_ADMIN_DOWN = _C["flags"]["admin_down"]
V4_MAPPED = bytes(10) + b"\xff\xff"

TableError = _ext.TableError
InUseError = _ext.InUseError

# The set_nh keywords each type uses (the others must be left at their defaults).
NH_FIELDS = {
    "discard": (), "receive": (), "vrf": ("vrf",), "ecmp": ("members",),
    "interface": ("vif", "dmac", "smac"),
    "tunnel": ("vif", "dmac", "smac", "encap", "src", "dst", "vni", "label", "inner_dmac", "ttl"),
}
_NH_DEFAULTS = {"vif": None, "dmac": None, "smac": None, "encap": "vxlan", "src": None, "dst": None,
                "vni": None, "label": None, "inner_dmac": None, "ttl": 0, "vrf": None, "members": None}


_is_int = F.is_int


def _int(where, value, lo, hi):
    return F.integer(where, value, lo, hi)


def _bool(where, value):
    return F.boolean(where, value)


def mac_bytes(where, value, *, unicast=True):
    return F.mac_bytes(where, value, unicast=unicast)


mac_str = F.mac_text


def ip_unicast(where, value, version=None):
    return F.address(where, value, version, unicast=True)


def prefix_record(where, value, fabric=False):
    """'10.1.0.2/32' / '2001:db8::/64' -> (16-byte addr, len in 128-bit space, family)."""
    net = F.network(where, value)
    if fabric and net.prefixlen != net.max_prefixlen:
        raise F.FieldError(where, f"a fabric vif lists the node's own addresses (/32 or /128), got {net}")
    if net.version == 4:
        return V4_MAPPED + net.network_address.packed, 96 + net.prefixlen, 4
    return net.network_address.packed, net.prefixlen, 6


def prefix_str(addr, ln, fam):
    if fam == 4:
        return str(ipaddress.IPv4Network((addr[12:], ln - 96)))
    return str(ipaddress.IPv6Network((addr, ln)))


class NhTable:
    """Vifs, next hops, labels and VNIs, published RCU-style (see ext/nexthop.h)."""

    def __init__(self, capacity=NH_DEFAULT_CAPACITY, domain=None):
        capacity = _int("capacity", capacity, 1, NH_MAX_CAPACITY)
        self._t = _ext.NhTableC(capacity, domain)

    @property
    def capacity(self) -> int:
        return self._t.capacity

    @property
    def memory(self) -> int:
        """Bytes held by the table (arrays, label/VNI pages, objects)."""
        return self._t.memory

    # ------------------------------------------------------------ ids

    @staticmethod
    def _vif_id(vid):
        if not _is_int(vid):
            raise TypeError(f"vif id: must be an integer, got {vid!r}")
        if not 0 <= vid < VIF_MAX:
            raise ValueError(f"vif {vid}: out of range 0..{VIF_MAX - 1}")
        return int(vid)

    def _nh_id(self, nid):
        if not _is_int(nid):
            raise TypeError(f"nh id: must be an integer, got {nid!r}")
        if not 0 <= nid < self.capacity:
            raise ValueError(f"nh {nid}: out of range 0..{self.capacity - 1}")
        return int(nid)

    @staticmethod
    def _label(label):
        if not _is_int(label):
            raise TypeError(f"label: must be an integer, got {label!r}")
        if not LABEL_MIN <= label <= LABEL_MAX:
            raise ValueError(f"label {label}: out of range {LABEL_MIN}..{LABEL_MAX} "
                             f"(0..{LABEL_MIN - 1} are reserved)")
        return int(label)

    @staticmethod
    def _vni(vni):
        if not _is_int(vni):
            raise TypeError(f"vni: must be an integer, got {vni!r}")
        if not 0 <= vni <= VNI_MAX:
            raise ValueError(f"vni {vni}: out of range 0..{VNI_MAX}")
        return int(vni)

    # ------------------------------------------------------------ vifs

    def set_vif(self, id, kind="virtual", vrf=0, mac=None, mtu=1500, vlan=0, policy=False,
                admin_down=False, gw4=None, gw6=None, prefixes=()):
        """Add or replace a vif (mac is required). kind: "virtual" (a workload
        port; prefixes = the sources it may use, none = no check), "fabric"
        (the underlay NIC; prefixes = the node's addresses, /32 or /128),
        "host". vrf: of the frames received on it; mtu: the IP MTU; vlan: the
        802.1Q id on the wire (0 untagged); gw4/gw6: the gateway the workload
        uses. Replacing a vif that next hops use rebuilds their headers (its
        MAC and VLAN); its kind cannot change then (InUseError)."""
        vid = self._vif_id(id)
        w = f"vif {vid}"
        if mac is None:
            raise ValueError(f"{w} mac: required")
        if kind not in KINDS:
            raise ValueError(f"{w} kind: must be one of {', '.join(KINDS)}, got {kind!r}")
        flags = (F_POLICY if _bool(f"{w} policy", policy) else 0) | \
                (F_ADMIN_DOWN if _bool(f"{w} admin_down", admin_down) else 0)
        vrf = _int(f"{w} vrf", vrf, 0, 65535)
        mtu = _int(f"{w} mtu", mtu, 68, 65535)
        vlan = _int(f"{w} vlan", vlan, 0, 4094)
        mac = mac_bytes(f"{w} mac", mac)
        g4 = None if gw4 is None else ip_unicast(f"{w} gw4", gw4, 4).packed
        g6 = None if gw6 is None else ip_unicast(f"{w} gw6", gw6, 6).packed
        if isinstance(prefixes, str) or not hasattr(prefixes, "__iter__"):
            raise TypeError(f"{w} prefixes: must be a list of prefix strings, got {prefixes!r}")
        prefixes = list(prefixes)
        if len(prefixes) > VIF_MAX_PREFIXES:
            raise ValueError(f"{w} prefixes: at most {VIF_MAX_PREFIXES}, got {len(prefixes)}")
        recs = [prefix_record(f"{w} prefixes[{i}]", p, kind == "fabric") for i, p in enumerate(prefixes)]
        self._t.vif_set(vid, KINDS[kind], flags, vrf, mtu, vlan, mac, g4, g6, recs)

    def del_vif(self, id):
        self._t.vif_del(self._vif_id(id))

    def vif(self, id) -> dict | None:
        """The vif as set_vif's keywords (set_vif(**t.vif(i)) is a no-op), or None."""
        v = self._t.vif_get(self._vif_id(id))
        if v is None:
            return None
        return {"id": v["id"], "kind": KIND_NAMES[v["kind"]], "vrf": v["vrf"], "mac": mac_str(v["mac"]),
                "mtu": v["mtu"], "vlan": v["vlan"], "policy": bool(v["flags"] & F_POLICY),
                "admin_down": bool(v["flags"] & F_ADMIN_DOWN),
                "gw4": str(ipaddress.IPv4Address(v["gw4"])) if v["has_gw4"] else None,
                "gw6": str(ipaddress.IPv6Address(v["gw6"])) if v["has_gw6"] else None,
                "prefixes": [prefix_str(*p) for p in v["prefixes"]]}

    def vifs(self) -> list[int]:
        out, cur = [], 0
        while True:
            ids, cur = self._t.vif_list(cur, 1024)
            if not ids:
                return out
            out += ids

    def vif_refs(self, id) -> int:
        """Next hops using the vif."""
        return self._t.vif_refs(self._vif_id(id))

    # ------------------------------------------------------------ next hops

    def set_nh(self, id, type, *, vif=None, dmac=None, smac=None, encap="vxlan", src=None, dst=None,
               vni=None, label=None, inner_dmac=None, ttl=0, vrf=None, members=None):
        """Add or replace a next hop. Keywords by type:
          discard, receive: none
          interface: vif (any kind), dmac; smac (default: the vif's MAC)
          tunnel: vif (a fabric vif), dmac (the underlay next hop), src, dst (outer
            addresses, IPv4 or IPv6, same family), encap "vxlan" with vni (and
            inner_dmac, the remote router MAC) or "mplsoudp" with label; smac; ttl (0 = 64)
          ecmp: members, a list of next-hop ids (None = empty slot), 1..64 slots
          vrf: vrf, the VRF to look the packet up again in"""
        nid = self._nh_id(id)
        w = f"nh {nid}"
        if type not in TYPES:
            raise ValueError(f"{w} type: must be one of {', '.join(TYPES)}, got {type!r}")
        given = dict(vif=vif, dmac=dmac, smac=smac, encap=encap, src=src, dst=dst, vni=vni, label=label,
                     inner_dmac=inner_dmac, ttl=ttl, vrf=vrf, members=members)
        for name, value in given.items():
            default = _NH_DEFAULTS[name]
            if name not in NH_FIELDS[type] and (value is not None if default is None else value != default):
                raise ValueError(f"{w} {name}: not used by a {type} next hop")
        raw = {}
        if type in ("interface", "tunnel"):
            if vif is None:
                raise ValueError(f"{w} vif: required for a {type} next hop")
            raw["vif"] = _int(f"{w} vif", vif, 0, VIF_MAX - 1)
            if dmac is None:
                raise ValueError(f"{w} dmac: required for a {type} next hop")
            raw["dmac"] = mac_bytes(f"{w} dmac", dmac, unicast=type == "tunnel")
            raw["smac"] = None if smac is None else mac_bytes(f"{w} smac", smac)
        if type == "tunnel":
            raw.update(self._tunnel(w, encap, src, dst, vni, label, inner_dmac, ttl))
        elif type == "ecmp":
            raw["members"] = self._members(w, members)
        elif type == "vrf":
            if vrf is None:
                raise ValueError(f"{w} vrf: required for a vrf next hop")
            raw["vrf"] = _int(f"{w} vrf", vrf, 0, 65535)
        self._t.nh_set(nid, TYPES[type], **raw)

    def _tunnel(self, w, encap, src, dst, vni, label, inner_dmac, ttl):
        if encap not in ENCAPS:
            raise ValueError(f"{w} encap: must be one of {', '.join(ENCAPS)}, got {encap!r}")
        if src is None:
            raise ValueError(f"{w} src: required for a tunnel next hop")
        s = ip_unicast(f"{w} src", src)
        if dst is None:
            raise ValueError(f"{w} dst: required for a tunnel next hop")
        d = ip_unicast(f"{w} dst", dst)
        if d.version != s.version:
            raise ValueError(f"{w} dst: address family differs from src ({s})")
        raw = {"encap": ENCAPS[encap], "family": s.version, "src": s.packed, "dst": d.packed}
        if encap == "vxlan":
            if label is not None:
                raise ValueError(f"{w} label: not used by vxlan (give vni)")
            if vni is None:
                raise ValueError(f"{w} vni: required for a vxlan tunnel")
            raw["label"] = _int(f"{w} vni", vni, 0, VNI_MAX)
            if inner_dmac is not None:
                raw["inner_dmac"] = mac_bytes(f"{w} inner_dmac", inner_dmac)
        else:
            if vni is not None:
                raise ValueError(f"{w} vni: not used by mplsoudp (give label)")
            if label is None:
                raise ValueError(f"{w} label: required for an mplsoudp tunnel")
            raw["label"] = _int(f"{w} label", label, LABEL_MIN, LABEL_MAX)
            if inner_dmac is not None:
                raise ValueError(f"{w} inner_dmac: not used by mplsoudp")
        raw["ttl"] = _int(f"{w} ttl", ttl, 0, 255)
        return raw

    def _members(self, w, members):
        if members is None:
            raise ValueError(f"{w} members: required for an ecmp next hop")
        if isinstance(members, (str, bytes)) or not hasattr(members, "__iter__"):
            raise TypeError(f"{w} members: must be a list of next-hop ids or None, got {members!r}")
        members = list(members)
        if not 1 <= len(members) <= NH_ECMP_MAX:
            raise ValueError(f"{w} members: need 1..{NH_ECMP_MAX} slots, got {len(members)}")
        return [NH_NONE if m is None else _int(f"{w} members[{i}]", m, 0, self.capacity - 1)
                for i, m in enumerate(members)]

    def del_nh(self, id):
        self._t.nh_del(self._nh_id(id))

    def nh(self, id) -> dict | None:
        """The next hop as set_nh's keywords (those of its type) plus what the
        pipeline uses: "hdr" (the precomputed rewrite) and "l3_off" for
        interface/tunnel, "ip_csum_base"/"udp_csum_base" for tunnels, "live"
        (slot indexes of the non-empty members) for ecmp. None if absent."""
        x = self._t.nh_get(self._nh_id(id))
        if x is None:
            return None
        t = TYPE_NAMES[x["type"]]
        out = {"id": x["id"], "type": t}
        if t in ("interface", "tunnel"):
            out.update(vif=x["vif"], dmac=mac_str(x["dmac"]),
                       smac=mac_str(x["smac"]) if any(x["smac"]) else None)
        if t == "tunnel":
            n = 4 if x["family"] == 4 else 16
            enc = ENCAP_NAMES[x["encap"]]
            out.update(encap=enc, src=str(ipaddress.ip_address(x["src"][:n])),
                       dst=str(ipaddress.ip_address(x["dst"][:n])), ttl=x["ttl"])
            if enc == "vxlan":
                out.update(vni=x["label"], inner_dmac=mac_str(x["inner_dmac"]) if any(x["inner_dmac"]) else None)
            else:
                out["label"] = x["label"]
            out.update(ip_csum_base=x["ip_csum_base"], udp_csum_base=x["udp_csum_base"])
        if t in ("interface", "tunnel"):
            out.update(hdr=x["hdr"], l3_off=x["l3_off"])
        elif t == "ecmp":
            out.update(members=[None if m == NH_NONE else m for m in x["members"]], live=x["live"])
        elif t == "vrf":
            out["vrf"] = x["vrf"]
        return out

    def nhs(self) -> list[int]:
        out, cur = [], 0
        while True:
            ids, cur = self._t.nh_list(cur, 4096)
            if not ids:
                return out
            out += ids

    def nh_refs(self, id) -> int:
        """Labels and ECMP member slots referring to the next hop."""
        return self._t.nh_refs(self._nh_id(id))

    # ------------------------------------------------------------ labels, VNIs

    def set_label(self, label, nh):
        """MPLS label (from the fabric) -> next hop, which must exist."""
        label = self._label(label)
        self._t.label_set(label, _int(f"label {label} nh", nh, 0, self.capacity - 1))

    def del_label(self, label):
        self._t.label_del(self._label(label))

    def label(self, label) -> int | None:
        r = self._t.label_lookup(_int("label", label, 0, 2 ** 32 - 1))
        return None if r == NH_NONE else r

    def labels(self) -> dict:
        out, cur = {}, 0
        while True:
            ls, ns, cur = self._t.label_list(cur, 4096)
            if not ls:
                return out
            out.update(zip(ls, ns))

    def set_vni(self, vni, vrf):
        """VXLAN VNI (from the fabric) -> VRF."""
        vni = self._vni(vni)
        self._t.vni_set(vni, _int(f"vni {vni} vrf", vrf, 0, 65535))

    def del_vni(self, vni):
        self._t.vni_del(self._vni(vni))

    def vni(self, vni) -> int | None:
        r = self._t.vni_lookup(_int("vni", vni, 0, 2 ** 32 - 1))
        return None if r < 0 else r

    def vnis(self) -> dict:
        out, cur = {}, 0
        while True:
            vs, rs, cur = self._t.vni_list(cur, 4096)
            if not vs:
                return out
            out.update(zip(vs, rs))

    def dump(self) -> dict:
        """Everything, for the control server and the tests."""
        nhs = {i: self.nh(i) for i in self.nhs()}
        vifs = {i: self.vif(i) for i in self.vifs()}
        return {"vifs": vifs, "nhs": nhs, "labels": self.labels(), "vnis": self.vnis(),
                "vif_refs": {i: n for i in vifs if (n := self._t.vif_refs(i))},
                "nh_refs": {i: n for i in nhs if (n := self._t.nh_refs(i))}}
