# Thin wrapper over ext/nexthop.h: raw fields in (ints, bytes), dicts out.
# Field-by-field validation with friendly names lives in vrouter/nexthop.py;
# the C side re-checks everything. Errors the C side reports are mapped here,
# with what the table state says about them (which vif is missing, who still
# refers to an object).
cimport nexthop as cnh
from libc.string cimport memcpy, memset


class InUseError(TableError):
    """A delete or change refused because something still refers to the object."""


def nh_struct_sizes():
    return {"vif": sizeof(cnh.vif), "nh_spec": sizeof(cnh.nh_spec), "nh": sizeof(cnh.nh),
            "prefix": sizeof(cnh.vr_prefix)}


def nh_constants():
    return {"VIF_MAX": cnh.VIF_MAX, "VIF_NONE": cnh.VIF_NONE, "VIF_MAX_PREFIXES": cnh.VIF_MAX_PREFIXES,
            "NH_NONE": cnh.NH_NONE, "NH_MAX_CAPACITY": cnh.NH_MAX_CAPACITY,
            "NH_DEFAULT_CAPACITY": cnh.NH_DEFAULT_CAPACITY, "NH_ECMP_MAX": cnh.NH_ECMP_MAX,
            "NH_HDR_MAX": cnh.NH_HDR_MAX, "LABEL_MIN": cnh.LABEL_MIN, "LABEL_MAX": cnh.LABEL_MAX,
            "VNI_MAX": cnh.VNI_MAX, "IDMAP_PAGE": cnh.IDMAP_PAGE,
            "kinds": {"virtual": cnh.VIF_VIRTUAL, "fabric": cnh.VIF_FABRIC, "host": cnh.VIF_HOST},
            "flags": {"policy": cnh.VIF_F_POLICY, "admin_down": cnh.VIF_F_ADMIN_DOWN},
            "types": {"discard": cnh.NH_DISCARD, "receive": cnh.NH_RECEIVE,
                      "interface": cnh.NH_INTERFACE, "tunnel": cnh.NH_TUNNEL,
                      "ecmp": cnh.NH_ECMP, "vrf": cnh.NH_VRF},
            "encaps": {"vxlan": cnh.NH_ENC_VXLAN, "mplsoudp": cnh.NH_ENC_MPLSOUDP}}


# What each field the C side may name must satisfy (messages of last resort:
# the facade checks all of these first, with the offending value).
_NH_RULES = {
    "kind": "must be virtual, fabric or host", "flags": "unknown flag bits",
    "mtu": "must be 68..65535", "vlan": "must be 0..4094", "mac": "must be a unicast, non-zero MAC",
    "gw4": "must be a unicast IPv4 address", "gw6": "must be a unicast IPv6 address",
    "prefixes": "at most 8 prefixes, family/length consistent, host bits zero (fabric: host prefixes)",
    "type": "unknown type", "encap": "must be vxlan or mplsoudp", "family": "must be 4 or 6",
    "label": "VNI 0..2^24-1 (vxlan) or label 16..2^20-1 (mplsoudp)",
    "src": "must be a unicast address of the family", "dst": "must be a unicast address of the family",
    "dmac": "must be a non-zero MAC (a tunnel's: unicast)", "smac": "must be unicast (or zero: the vif's MAC)",
    "n_members": "must be 1..64",
}


cdef void _put(uint8_t *dst, object b, Py_ssize_t n, str what) except *:
    """Raw bytes into a fixed field, zero-padded (b"" / None = zero)."""
    if b is None:
        b = b""
    b = bytes(b)
    if len(b) > n:
        raise ValueError(f"{what}: at most {n} bytes, got {len(b)}")
    memset(dst, 0, n)
    if len(b):
        memcpy(dst, <const char *>b, len(b))


cdef class NhTableC:
    """Vifs, next hops, labels and VNIs; see ext/nexthop.h.
    Use vrouter.nexthop.NhTable instead."""
    cdef cnh.nh_table *t
    cdef readonly RcuDomain dom

    def __cinit__(self, uint32_t capacity=cnh.NH_DEFAULT_CAPACITY, RcuDomain domain=None):
        self.dom = domain if domain is not None else default_domain()
        rc = cnh.nh_table_create(self.dom.d, capacity, &self.t)
        if rc == -ERANGE:
            raise ValueError(f"capacity: must be 1..{cnh.NH_MAX_CAPACITY}, got {capacity}")
        check_rc(rc, "next-hop table create")

    def __dealloc__(self):
        if self.t != NULL:
            cnh.nh_table_destroy(self.t)
            self.t = NULL

    @property
    def capacity(self):
        return cnh.nh_capacity(self.t)

    @property
    def memory(self):
        return cnh.nh_table_memory(self.t)

    # ------------------------------------------------------------ errors

    cdef int _fail(self, int rc, str what, object ident, const char *why, str detail=None) except -1:
        cdef str field = why.decode() if why != NULL else None
        if rc == -EINVAL:
            raise ValueError(f"{what} {ident} {field}: {detail or _NH_RULES.get(field, 'invalid')}")
        if rc == -ERANGE:
            hi = {"vif": cnh.VIF_MAX - 1, "nh": cnh.nh_capacity(self.t) - 1,
                  "label": cnh.LABEL_MAX, "vni": cnh.VNI_MAX}[what]
            lo = cnh.LABEL_MIN if what == "label" else 0
            raise ValueError(f"{what} {ident}: out of range {lo}..{hi}")
        if rc == -ENOENT:
            raise KeyError(f"{what} {ident}: not found")
        if rc == -EBUSY:
            raise InUseError(f"{what} {ident}{' ' + field if field else ''}: "
                             f"{detail or 'in use by ' + self._referrers(what, ident)}")
        return check_rc(rc, f"{what} {ident}")

    def _referrers(self, str what, uint32_t ident, int limit=8):
        """Who refers to vif/nh `ident`, as text: 'nh 4, label 100, ...'."""
        out = []
        cdef uint32_t i, k, n, cur = 0
        cdef uint32_t labels[256]
        cdef uint32_t nhs[256]
        cdef const cnh.nh *x
        cdef int slot = crcu.rcu_read_enter(self.dom.d)
        try:
            for i in range(cnh.nh_capacity(self.t)):
                x = cnh.nh_get(self.t, i)
                if x == NULL:
                    continue
                if what == "vif" and x.s.type in (cnh.NH_INTERFACE, cnh.NH_TUNNEL) and x.s.vif == ident:
                    out.append(f"nh {i}")
                elif what == "nh" and x.s.type == cnh.NH_ECMP:
                    for k in range(x.n_live):
                        if x.s.members[x.live[k]] == ident:
                            out.append(f"ecmp nh {i}")
                            break
            while what == "nh":
                n = cnh.label_list(self.t, &cur, labels, nhs, 256)
                if n == 0:
                    break
                for k in range(n):
                    if nhs[k] == ident:
                        out.append(f"label {labels[k]}")
        finally:
            crcu.rcu_read_exit(self.dom.d, slot)
        more = f" and {len(out) - limit} more" if len(out) > limit else ""
        return ", ".join(out[:limit]) + more if out else "nothing (stale count)"

    # ------------------------------------------------------------ vifs

    def vif_set(self, uint16_t ident, kind, flags, vrf, mtu, vlan, mac,
                gw4=None, gw6=None, prefixes=(), has_gw4=None, has_gw6=None):
        """Raw vif: mac 6 bytes, gw4 4 bytes / gw6 16 bytes or None,
        prefixes [(16-byte addr, len in 128-bit space, family)]. Integers
        that do not fit their C field raise OverflowError."""
        cdef cnh.vif v
        cdef const char *why = NULL
        cdef int rc
        cdef const cnh.vif *old
        memset(&v, 0, sizeof(v))
        prefixes = list(prefixes)
        if len(prefixes) > 255:
            raise ValueError(f"vif {ident} prefixes: at most {cnh.VIF_MAX_PREFIXES}")
        v.id, v.kind, v.flags, v.vrf, v.mtu, v.vlan = ident, kind, flags, vrf, mtu, vlan
        _put(v.mac, mac, 6, "mac")
        v.has_gw4 = (gw4 is not None) if has_gw4 is None else has_gw4
        v.has_gw6 = (gw6 is not None) if has_gw6 is None else has_gw6
        _put(v.gw4, gw4, 4, "gw4")
        _put(v.gw6, gw6, 16, "gw6")
        v.n_prefixes = len(prefixes)
        for i, (addr, ln, fam) in enumerate(prefixes[:cnh.VIF_MAX_PREFIXES]):
            _put(v.prefixes[i].addr, addr, 16, "prefix")
            v.prefixes[i].len, v.prefixes[i].family = ln, fam
        rc = cnh.vif_set(self.t, &v, &why)
        if rc == -EBUSY:
            old = cnh.vif_get(self.t, ident)
            names = {cnh.VIF_VIRTUAL: "virtual", cnh.VIF_FABRIC: "fabric", cnh.VIF_HOST: "host"}
            self._fail(rc, "vif", ident, why,
                       f"cannot change from {names.get(old.kind)} to {names.get(kind, kind)} while "
                       f"next hops use it ({self._referrers('vif', ident)})")
        self._fail(rc, "vif", ident, why)
        crcu.rcu_reclaim(self.dom.d)

    def vif_del(self, uint16_t ident):
        self._fail(cnh.vif_del(self.t, ident), "vif", ident, NULL)
        crcu.rcu_reclaim(self.dom.d)

    def vif_get(self, uint32_t ident):
        """The published vif as a dict of raw fields, or None."""
        cdef cnh.vif v
        cdef const cnh.vif *p
        cdef int slot = crcu.rcu_read_enter(self.dom.d)
        p = cnh.vif_get(self.t, ident)
        if p != NULL:
            v = p[0]
        crcu.rcu_read_exit(self.dom.d, slot)
        if p == NULL:
            return None
        return {"id": v.id, "kind": v.kind, "flags": v.flags, "vrf": v.vrf, "mtu": v.mtu,
                "vlan": v.vlan, "mac": bytes(v.mac[:6]), "has_gw4": v.has_gw4, "gw4": bytes(v.gw4[:4]),
                "has_gw6": v.has_gw6, "gw6": bytes(v.gw6[:16]),
                "prefixes": [(bytes(v.prefixes[i].addr[:16]), v.prefixes[i].len, v.prefixes[i].family)
                             for i in range(min(v.n_prefixes, cnh.VIF_MAX_PREFIXES))]}

    def vif_refs(self, uint16_t ident):
        return cnh.vif_refs(self.t, ident)

    def vif_list(self, uint32_t cursor=0, uint32_t cap=1024):
        """(ids, next cursor): one page of the ids in use from cursor."""
        out = np.empty(max(cap, 1), np.uint16)
        cdef uint16_t[::1] o = out
        cdef uint32_t n = cnh.vif_list(self.t, &cursor, &o[0], cap)
        return [int(x) for x in out[:n]], cursor

    # ------------------------------------------------------------ next hops

    def nh_set(self, uint32_t ident, nh_type, encap=0, family=0, ttl=0, vif=0, vrf=0,
               dmac=None, smac=None, inner_dmac=None, label=0, src=None, dst=None,
               members=None, n_members=None):
        """Raw next hop: MACs 6 bytes, src/dst 4 (family 4) or 16 bytes,
        members a list of ids (NH_NONE = empty slot)."""
        cdef cnh.nh_spec s
        cdef const char *why = NULL
        cdef int rc
        memset(&s, 0, sizeof(s))
        members = list(members or ())
        s.id, s.type, s.encap, s.family, s.ttl, s.vif, s.vrf = ident, nh_type, encap, family, ttl, vif, vrf
        _put(s.dmac, dmac, 6, "dmac")
        _put(s.smac, smac, 6, "smac")
        _put(s.inner_dmac, inner_dmac, 6, "inner_dmac")
        _put(s.src, src, 16, "src")
        _put(s.dst, dst, 16, "dst")
        s.label = label
        s.n_members = len(members) if n_members is None else n_members
        for i, m in enumerate(members[:cnh.NH_ECMP_MAX]):
            s.members[i] = m
        rc = cnh.nh_set(self.t, &s, &why)
        detail = None
        if rc == -EINVAL and why != NULL:
            detail = self._explain(&s, why.decode())
        self._fail(rc, "nh", ident, why, detail)
        crcu.rcu_reclaim(self.dom.d)

    cdef str _explain(self, const cnh.nh_spec *s, str field):
        """The state-dependent refusals, spelled out."""
        cdef const cnh.vif *v
        cdef const cnh.nh *m
        cdef uint32_t i
        names = {cnh.VIF_VIRTUAL: "virtual", cnh.VIF_FABRIC: "fabric", cnh.VIF_HOST: "host"}
        if field == "vif":
            v = cnh.vif_get(self.t, s.vif)
            if v == NULL:
                return f"vif {s.vif} does not exist"
            return f"vif {s.vif} is a {names.get(v.kind, v.kind)} vif; a tunnel leaves through a fabric vif"
        if field == "members":
            for i in range(min(s.n_members, <uint32_t>cnh.NH_ECMP_MAX)):
                if s.members[i] == cnh.NH_NONE:
                    continue
                if s.members[i] == s.id:
                    return f"slot {i}: an ECMP next hop cannot be its own member"
                m = cnh.nh_get(self.t, s.members[i])
                if m == NULL:
                    return f"slot {i}: nh {s.members[i]} does not exist"
                if m.s.type == cnh.NH_ECMP:
                    return f"slot {i}: nh {s.members[i]} is itself ECMP (members cannot be ECMP)"
        if field == "type" and s.type == cnh.NH_ECMP:
            return (f"it is a member of {self._referrers('nh', s.id)}; "
                    f"an ECMP member cannot become ECMP")
        return None

    def nh_del(self, uint32_t ident):
        self._fail(cnh.nh_del(self.t, ident), "nh", ident, NULL)
        crcu.rcu_reclaim(self.dom.d)

    def nh_get(self, uint32_t ident):
        """The published next hop as a dict of raw fields (with the rewrite), or None."""
        cdef cnh.nh x
        cdef const cnh.nh *p
        cdef int slot = crcu.rcu_read_enter(self.dom.d)
        p = cnh.nh_get(self.t, ident)
        if p != NULL:
            x = p[0]
        crcu.rcu_read_exit(self.dom.d, slot)
        if p == NULL:
            return None
        nm = min(x.s.n_members, <uint32_t>cnh.NH_ECMP_MAX)
        return {"id": x.s.id, "type": x.s.type, "encap": x.s.encap, "family": x.s.family,
                "ttl": x.s.ttl, "vif": x.s.vif, "vrf": x.s.vrf, "dmac": bytes(x.s.dmac[:6]),
                "smac": bytes(x.s.smac[:6]), "inner_dmac": bytes(x.s.inner_dmac[:6]),
                "label": x.s.label, "src": bytes(x.s.src[:16]), "dst": bytes(x.s.dst[:16]),
                "n_members": x.s.n_members, "members": [x.s.members[i] for i in range(nm)],
                "hdr": bytes(x.hdr[:x.hdr_len]) if x.hdr_len else b"", "hdr_len": x.hdr_len,
                "l3_off": x.l3_off, "ip_csum_base": x.ip_csum_base, "udp_csum_base": x.udp_csum_base,
                "n_live": x.n_live, "live": [x.live[i] for i in range(min(x.n_live, <uint32_t>cnh.NH_ECMP_MAX))]}

    def nh_refs(self, uint32_t ident):
        return cnh.nh_refs(self.t, ident)

    def nh_list(self, uint32_t cursor=0, uint32_t cap=1024):
        """(ids, next cursor): one page of the ids in use from cursor."""
        out = np.empty(max(cap, 1), np.uint32)
        cdef uint32_t[::1] o = out
        cdef uint32_t n = cnh.nh_list(self.t, &cursor, &o[0], cap)
        return [int(x) for x in out[:n]], cursor

    # ------------------------------------------------------------ labels, VNIs

    def label_set(self, uint32_t label, uint32_t nh):
        rc = cnh.label_set(self.t, label, nh)
        if rc == -ENOENT:
            raise ValueError(f"label {label} nh: next hop {nh} does not exist")
        self._fail(rc, "label", label, NULL)

    def label_del(self, uint32_t label):
        self._fail(cnh.label_del(self.t, label), "label", label, NULL)

    def label_lookup(self, uint32_t label):
        """The next hop of a label, NH_NONE if unset."""
        cdef int slot = crcu.rcu_read_enter(self.dom.d)
        cdef uint32_t r = cnh.label_lookup(self.t, label)
        crcu.rcu_read_exit(self.dom.d, slot)
        return r

    def label_list(self, uint32_t cursor=0, uint32_t cap=1024):
        """(labels, nhs, next cursor)."""
        a = np.empty(max(cap, 1), np.uint32)
        b = np.empty(max(cap, 1), np.uint32)
        cdef uint32_t[::1] x = a
        cdef uint32_t[::1] y = b
        cdef uint32_t n = cnh.label_list(self.t, &cursor, &x[0], &y[0], cap)
        return [int(v) for v in a[:n]], [int(v) for v in b[:n]], cursor

    def vni_set(self, uint32_t vni, uint16_t vrf):
        self._fail(cnh.vni_set(self.t, vni, vrf), "vni", vni, NULL)

    def vni_del(self, uint32_t vni):
        self._fail(cnh.vni_del(self.t, vni), "vni", vni, NULL)

    def vni_lookup(self, uint32_t vni):
        """The VRF of a VNI, -1 if unset."""
        cdef int slot = crcu.rcu_read_enter(self.dom.d)
        cdef int r = cnh.vni_lookup(self.t, vni)
        crcu.rcu_read_exit(self.dom.d, slot)
        return r

    def vni_list(self, uint32_t cursor=0, uint32_t cap=1024):
        """(vnis, vrfs, next cursor)."""
        a = np.empty(max(cap, 1), np.uint32)
        b = np.empty(max(cap, 1), np.uint16)
        cdef uint32_t[::1] x = a
        cdef uint16_t[::1] y = b
        cdef uint32_t n = cnh.vni_list(self.t, &cursor, &x[0], &y[0], cap)
        return [int(v) for v in a[:n]], [int(v) for v in b[:n]], cursor
